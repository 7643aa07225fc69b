"""Bounding HTTP request heads however they arrive."""

from __future__ import annotations


class HeadMeter:
    """Counts the bytes of the request head being received and says when it passes a limit.

    HTTP parsers bound a head that arrives in pieces, but TLS hands over up to 256 KiB at
    once, and h11 (uvicorn's parser) then takes a huge head in one go. Feed every chunk read
    while a head is expected; `reset` once a request is under way.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._bytes = 0
        self._tail = b""

    def too_long(self, data: bytes) -> bool:
        """Count `data`; whether the head now passes the limit. The count starts again after
        the blank line that ends a head."""
        end = (self._tail + data).find(b"\r\n\r\n")
        if end >= 0:
            size = self._bytes + end + 4 - len(self._tail)
            self._bytes, self._tail = 0, b""
        else:
            size = self._bytes + len(data)
            self._bytes = size
            self._tail = (self._tail + data)[-3:]
        return size > self.limit

    def reset(self) -> None:
        self._bytes, self._tail = 0, b""
