"""Plugins shipped with the kernel: `system` (host clock and health) and `dummy` (declared points)."""
