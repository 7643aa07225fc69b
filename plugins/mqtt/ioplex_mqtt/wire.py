"""MQTT 3.1.1 framing of the two packets that carry the load: PUBLISH and PUBACK.

paho-mqtt spends most of a small message's cost around the bytes rather than on them (a
message object, a reason code and a properties object per acknowledgement, three socket reads
per packet, a lock per step). `clientio` sends and reads these two packet types with the
functions here and leaves every other packet (CONNACK, SUBACK, PINGRESP, QoS 2, MQTT 5) to
paho. Anything malformed raises `WireError` (a ValueError), which ends the link as paho's own
protocol errors do.
"""

from __future__ import annotations

PUBLISH = 0x30
PUBACK = 0x40
MAX_REMAINING = 268_435_455
"""The largest remaining length four length bytes can say (MQTT 3.1.1, 2.2.3)."""


class WireError(ValueError):
    """Bytes that are not a well-formed MQTT packet."""


def remaining_length(n: int) -> bytes:
    """The variable-length encoding of a packet's remaining length."""
    if n < 128:
        return bytes((n,))
    if not 0 <= n <= MAX_REMAINING:
        raise WireError(f"remaining length {n} is over the MQTT maximum")
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_publish(topic: bytes, payload: bytes, qos: int, retain: bool, mid: int) -> bytes:
    """One PUBLISH packet; `mid` is written only for QoS 1 and 2."""
    if len(topic) > 0xFFFF:
        raise WireError(f"topic of {len(topic)} bytes is over the MQTT maximum of 65535")
    header = PUBLISH | (qos << 1) | (1 if retain else 0)
    if qos:
        variable = len(topic).to_bytes(2, "big") + topic + mid.to_bytes(2, "big")
    else:
        variable = len(topic).to_bytes(2, "big") + topic
    return bytes((header,)) + remaining_length(len(variable) + len(payload)) + variable + payload


def encode_pubacks(mids: list[int]) -> bytes:
    """PUBACK packets for `mids`, back to back (one write for a burst of receptions)."""
    return b"".join(b"\x40\x02" + mid.to_bytes(2, "big") for mid in mids)


def frame(buffer: bytes | bytearray, pos: int) -> tuple[int, int, int] | None:
    """``(first byte, body start, body end)`` of the packet at `pos`, or None while the
    buffer holds only part of it; WireError for a length of more than four bytes."""
    end = len(buffer)
    if pos >= end:
        return None
    length = 0
    shift = 0
    i = pos + 1
    while True:
        if i >= end:
            return None
        byte = buffer[i]
        length |= (byte & 0x7F) << shift
        i += 1
        if not byte & 0x80:
            break
        shift += 7
        if shift > 21:
            raise WireError("remaining length of more than four bytes")
    if i + length > end:
        return None
    return buffer[pos], i, i + length


def decode_publish(
    first: int, buffer: bytes | bytearray, start: int, end: int
) -> tuple[bytes, bytes, int, bool, int]:
    """``(topic, payload, qos, retain, mid)`` of a PUBLISH body (`mid` 0 for QoS 0); the
    topic stays bytes (the caller decides what invalid UTF-8 means)."""
    qos = (first >> 1) & 3
    if qos == 3:
        raise WireError("PUBLISH with QoS 3")
    if end - start < 2:
        raise WireError("PUBLISH too short for its topic length")
    topic_end = start + 2 + ((buffer[start] << 8) | buffer[start + 1])
    if topic_end > end or (qos and topic_end + 2 > end):
        raise WireError("PUBLISH topic runs past the packet")
    topic = bytes(buffer[start + 2 : topic_end])
    mid = 0
    if qos:
        mid = (buffer[topic_end] << 8) | buffer[topic_end + 1]
        topic_end += 2
    return topic, bytes(buffer[topic_end:end]), qos, bool(first & 1), mid
