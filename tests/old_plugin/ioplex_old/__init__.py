"""A plugin for a kernel API this ioplex does not provide: it must be reported, not loaded."""

raise RuntimeError("loaded although its kernel requirement does not match")
