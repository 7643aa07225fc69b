"""Sparkplug B payloads: our bytes read by protoc (Google's C++ decoder, from Debian), values
round-tripping, and hostile input: only SparkplugError escapes the decoder."""

from __future__ import annotations

import math
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ioplex import Quality
from ioplex.testing import ensure_debian_package
from ioplex_mqtt.sparkplug_payload import (
    DataType,
    SparkplugError,
    datatype_of,
    decode,
    encode,
    fits,
    value_as,
)

PROTOC = Path("/usr/bin/protoc")


def decode_raw(data: bytes) -> str:
    """protoc's schema-less decoding: field numbers and wire values, as the C++ runtime reads
    them (strict: malformed input is an error)."""
    protoc = ensure_debian_package("protobuf-compiler", PROTOC)
    done = subprocess.run(
        [str(protoc), "--decode_raw"], input=data, capture_output=True, timeout=30, check=True
    )
    return done.stdout.decode()


def test_bytes_match_the_specification_field_numbers() -> None:
    """Field numbers of Sparkplug B 3.0's Payload (timestamp 1, metrics 2, seq 3) and Metric
    (name 1, alias 2, timestamp 3, datatype 4, is_null 7, properties 9, int_value 10,
    long_value 11, double_value 13, boolean_value 14, string_value 15), read by protoc."""
    data = encode(
        1_767_225_600_000,
        7,
        [
            ("bdSeq", None, DataType.Int64, 3, None, None),
            ("a/b", 1, DataType.Int64, -2, 1_767_225_600_001, None),
            (None, 2, DataType.Double, 21.5, None, Quality.BAD),
            (None, 3, DataType.Boolean, True, None, None),
            ("s", 4, DataType.String, "hé", None, None),
            ("n", 5, DataType.Int8, None, None, None),
            ("i8", 6, DataType.Int8, -1, None, None),
        ],
    )
    text = decode_raw(data)
    blocks = text.split("\n2 {")  # top-level metrics (nested ones are indented)
    assert blocks[0].strip() == "1: 1767225600000"
    assert text.rstrip().endswith("3: 7")
    bdseq, ab, double, boolean, string, null, int8 = (b.split("\n}")[0] for b in blocks[1:])
    assert bdseq.split() == ["1:", '"bdSeq"', "4:", "4", "11:", "3"]
    # Int64 -2 as the two's complement in the uint64 long_value
    assert ab.split() == [
        "1:", '"a/b"', "2:", "1", "3:", "1767225600001", "4:", "4", "11:", "18446744073709551614"
    ]  # fmt: skip
    assert "13: 0x" + struct.pack(">d", 21.5).hex() in double
    assert double.split()[:4] == ["2:", "2", "4:", "10"]
    assert '1: "Quality"' in double and "3: 0" in double  # OPC bad: 0, as Ignition reads
    assert boolean.split() == ["2:", "3", "4:", "11", "14:", "1"]
    assert string.split() == ["1:", '"s"', "2:", "4", "4:", "12", "15:", '"h\\303\\251"']
    assert null.split() == ["1:", '"n"', "2:", "5", "4:", "1", "7:", "1"]
    assert int8.split()[-2:] == ["10:", "4294967295"]  # int_value: uint32


VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(1 << 63), (1 << 63) - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=50),
)


@given(st.lists(VALUES, max_size=20), st.integers(0, 255))
def test_values_round_trip(values: list, seq: int) -> None:
    metrics = [
        (f"m/{i}", i + 1, datatype_of(None, v), v, 1000 + i, None) for i, v in enumerate(values)
    ]
    payload = decode(encode(5, seq, metrics), 1 << 20)
    assert payload.seq == seq and payload.timestamp == 5
    for metric, original in zip(payload.metrics, values, strict=True):
        assert metric.problem is None and metric.quality is Quality.GOOD
        if isinstance(original, float) and math.isnan(original):
            assert math.isnan(metric.value)
        else:
            assert metric.value == original and type(metric.value) is type(original)


@pytest.mark.parametrize(
    ("datatype", "raw", "expected"),
    [
        (DataType.Int8, 0xFF, -1),  # 8-bit two's complement
        (DataType.Int8, 0xFFFFFFFF, -1),  # 32-bit two's complement, as Tahu's Java writes
        (DataType.Int16, 0x8000, -32768),
        (DataType.Int32, 0x7FFFFFFF, 2**31 - 1),
        (DataType.UInt32, 0xFFFFFFFF, 2**32 - 1),
        (DataType.UInt8, 200, 200),
    ],
)
def test_narrow_integers(datatype: DataType, raw: int, expected: int) -> None:
    data = encode(0, 0, [("x", 1, DataType.UInt32, raw, None, None)])
    data = data.replace(bytes([0x20, DataType.UInt32]), bytes([0x20, datatype]))
    (metric,) = decode(data, 1024).metrics
    assert metric.value == expected


def test_ndata_without_datatype_reads_as_born() -> None:
    data = encode(0, 1, [(None, 1, DataType.Int64, -5, None, Quality.STALE)])
    data = data.replace(bytes([0x20, DataType.Int64]), b"")  # drop the datatype field
    (metric,) = decode(data, 1024).metrics
    assert metric.datatype is None and metric.quality is Quality.STALE
    assert value_as(metric, DataType.Int64) == (-5, None)


def test_fits() -> None:
    assert fits(DataType.Int8, -128) and not fits(DataType.Int8, 128)
    assert fits(DataType.UInt64, 2**64 - 1) and not fits(DataType.UInt32, -1)
    assert fits(DataType.Double, 1) and not fits(DataType.Boolean, 1)
    assert not fits(DataType.Bytes, b"x")


def test_refusals() -> None:
    with pytest.raises(SparkplugError, match="more than 10"):
        decode(b"\x08" * 11, 10)
    with pytest.raises(SparkplugError):
        decode(b"\x12\x05\x0a", 100)  # a metric running past the end
    bad_name = b"\x12\x04\x0a\x02\xff\xfe"
    with pytest.raises(SparkplugError, match="UTF-8"):
        decode(bad_name, 100)
    (metric,) = decode(b"\x12\x05\x0a\x01x\x20\x10", 100).metrics  # a DataSet
    assert metric.problem == "datatype DataSet is not supported"
    (metric,) = decode(b"\x12\x05\x0a\x01x\x20\x04", 100).metrics  # Int64 without a value
    assert metric.value is None and "without" in metric.problem


VALID = [
    encode(
        1_767_225_600_000,
        0,
        [
            ("bdSeq", None, DataType.Int64, 3, None, None),
            ("a/b", 1, DataType.Double, 1.25, 17, Quality.STALE),
            ("c", 2, DataType.String, "text", None, None),
            ("d", 3, DataType.Boolean, None, None, None),
        ],
    )
]


def _decoded(data: bytes) -> None:
    try:
        payload = decode(data, 1 << 16)
    except SparkplugError:
        return
    for metric in payload.metrics:  # and what comes out is usable as documented
        assert metric.name is None or isinstance(metric.name, str)
        for datatype in (DataType.Int64, DataType.String, DataType.Double, DataType.Boolean):
            try:
                value_as(metric, datatype)
            except SparkplugError:
                pass


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_fuzz_random_bytes(data: bytes) -> None:
    _decoded(data)


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(VALID),
    st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), min_size=1, max_size=8),
    st.integers(0, 400),
)
def test_fuzz_mutated_payloads(base: bytes, flips: list, cut: int) -> None:
    data = bytearray(base)
    for position, byte in flips:
        data[position % len(data)] = byte
    _decoded(bytes(data[: max(1, len(data) - cut % 40)]))
