"""How a write's failure reads over HTTP, the same in every server plugin."""

from __future__ import annotations

from ..errors import PointNameError, PointTypeError, ReadOnlyPointError, UnknownPointError

_STATUSES: tuple[tuple[type[BaseException], int, str], ...] = (
    (UnknownPointError, 404, "unknown_point"),
    (ReadOnlyPointError, 409, "read_only"),
    (PointTypeError, 422, "wrong_type"),
    (PointNameError, 400, "bad_name"),
    (TimeoutError, 504, "timeout"),
)


def write_status(exc: BaseException) -> tuple[int, str]:
    """(HTTP status, error code) for what `host.write` raised: the kernel's refusals are the
    client's fault (4xx); a driver's `WriteError` or anything else it raised is the device's
    (502, ``write_failed``); a timeout is 504."""
    for kind, status, code in _STATUSES:
        if isinstance(exc, kind):
            return status, code
    return 502, "write_failed"
