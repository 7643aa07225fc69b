"""ioplex plugin `ssh` (entry point group `ioplex`). Its I/O server type comes with its own issue."""
