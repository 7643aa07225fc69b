"""Numbers as vscpd reads them (``vscp_readStringValue``).

A numeric field on the wire is trimmed and lower-cased, then read as hex after ``0x``, octal
after ``0o``, binary after ``0b``, and *decimal* otherwise: ``08`` is 8 and ``0F`` is not hex.
Python's ``int(s, 0)`` differs on exactly those cases, hence this reader. Unlike vscpd, which
quietly reads garbage as 0, a field that is not a number raises `ValueError` naming it: a
server answers that with the parameter error instead of acting on a made-up value.
"""

from __future__ import annotations

_BASES = {"0x": 16, "0o": 8, "0b": 2}

# The tokens a byte is usually written as on the wire ("0x8A", "0x8a", "138", "0X8A"),
# looked up instead of parsed: data bytes are the bulk of every event line.
BYTE_TOKENS: dict[str, int] = {}
for _b in range(256):
    for _form in (f"0x{_b:02X}", f"0x{_b:02x}", f"0X{_b:02X}", f"0x{_b:X}", f"0x{_b:x}", str(_b)):
        BYTE_TOKENS[_form] = _b
del _b, _form


def read_value(text: str, what: str = "value") -> int:
    """Read one numeric field; an empty field is 0 (vscpd's default for omitted fields)."""
    s = text.strip().lower()
    if not s:
        return 0
    if s.isdigit() and s.isascii():  # the common case, and decimal even with leading zeros
        return int(s, 10)
    sign = 1
    body = s
    if body[0] in "+-":
        sign = -1 if body[0] == "-" else 1
        body = body[1:].lstrip()
    base = _BASES.get(body[:2], 10)
    digits = body[2:] if base != 10 else body
    try:
        if not digits or not digits.isalnum():
            raise ValueError
        return sign * int(digits, base)
    except ValueError:
        raise ValueError(f"{what} {text.strip()!r} is not a number") from None


def read_bounded(text: str, what: str, maximum: int) -> int:
    """`read_value`, checked to lie in 0..maximum."""
    value = read_value(text, what)
    if not 0 <= value <= maximum:
        raise ValueError(f"{what} {text.strip()!r} is out of range 0..{maximum}")
    return value
