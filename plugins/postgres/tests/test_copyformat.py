"""The binary COPY encoder gives byte for byte what psycopg's own formatter gives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
from hypothesis import given
from hypothesis import strategies as st
from ioplex_postgres import copyformat
from psycopg.adapt import Transformer

INT8 = st.integers(-(2**63), 2**63 - 1)
TIMES = st.floats(min_value=-2e9, max_value=4e9, allow_nan=False)
VALUES = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True))
ROWS = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c"]), INT8, TIMES, VALUES, st.sampled_from([0, 1, 2])),
    max_size=20,
)
POSTGRES_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def psycopg_payload(rows: list[tuple], series: dict[str, int]) -> bytes:
    """What psycopg's binary formatter writes for the same rows."""
    from psycopg._copy_base import BinaryFormatter

    transformer = Transformer()
    transformer.set_dumper_types(
        [psycopg.postgres.types[n].oid for n in ("int8", "int8", "timestamptz", "float8", "int2")],
        psycopg.pq.Format.BINARY,
    )
    formatter = BinaryFormatter(transformer)
    out = bytearray()
    for point, seq, t, value, quality in rows:
        stamp = POSTGRES_EPOCH + timedelta(microseconds=copyformat.micros(t))
        out += formatter.write_row((series[point], seq, stamp, value, quality))
    out += formatter.end()
    return bytes(out)


@given(ROWS, st.dictionaries(st.sampled_from(["a", "b", "c"]), INT8, min_size=3))
def test_same_bytes_as_psycopg(rows: list[tuple], series: dict[str, int]) -> None:
    mine = copyformat.raw_rows(rows, series)
    theirs = psycopg_payload(rows, series)
    assert mine == theirs


def test_microseconds() -> None:
    assert copyformat.micros(946_684_800.0) == 0
    assert copyformat.micros(946_684_800.000001) == 1
    assert copyformat.micros(0.0) == -946_684_800_000_000
