"""Raw samples as PostgreSQL's binary COPY format, built in one pass with `struct`.

Formatting row by row through psycopg's `Copy.write_row` costs an await and an adaptation
per value; a batch of 10,000 samples packed here is one buffer written with `Copy.write`,
built in a worker thread. The layout (PostgreSQL docs, "COPY", binary format): a signature
and two 32-bit words, then per row the field count (int16) and each field as its length
(int32, -1 for NULL) and its big-endian value, then the trailer -1 (int16). Fields, as in
the raw table: series int8, seq int8, time timestamptz (int8 microseconds since
2000-01-01 UTC), value float8 or NULL, quality int2.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
TRAILER = struct.pack(">h", -1)
POSTGRES_EPOCH = 946_684_800
"""2000-01-01 00:00:00 UTC in seconds since the Unix epoch."""
_VALUE = struct.Struct(">hiqiqiqidih")
_NULL = struct.Struct(">hiqiqiqiih")


def micros(t: float) -> int:
    """Seconds since the Unix epoch as PostgreSQL's timestamp: microseconds since 2000."""
    return round((t - POSTGRES_EPOCH) * 1_000_000)


def raw_rows(
    rows: Iterable[tuple[str, int, float, float | None, int]], series: Mapping[str, int]
) -> bytes:
    """The COPY payload of (point, seq, time, value, quality) rows; `series` maps each
    point to its series id."""
    value_row, null_row = _VALUE.pack, _NULL.pack
    parts = [SIGNATURE]
    append = parts.append
    for point, seq, t, value, quality in rows:
        stamp = round((t - POSTGRES_EPOCH) * 1_000_000)
        if value is None:
            append(null_row(5, 8, series[point], 8, seq, 8, stamp, -1, 2, quality))
        else:
            append(value_row(5, 8, series[point], 8, seq, 8, stamp, 8, value, 2, quality))
    append(TRAILER)
    return b"".join(parts)
