"""AMQP field values: tables, arrays, decimals, timestamps and the rest, encoded and
decoded in one place for the protocol and the broker.

Decoding is pamqp's, after the checks pamqp does not make on hostile input (lengths that
run past their table, nesting depth: `table_depth`). Encoding is ours, not pamqp's, which
sorts keys and always picks the smallest integer type and float32: here keys keep their
dict order, `Long` forces a signed 64-bit `l`, a float is a double `d`, bytes are a byte
array `x`, and `EncodedTable` passes a table already encoded (with its decoded view)
through as it is. `table_items` and `array_items` split an encoded table or array into
its encoded values, so that callers can keep values they do not change exactly as they
were.
"""

from __future__ import annotations

import datetime
import decimal
import struct
import time
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from pamqp import decode as pamqp_decode
from pamqp import encode as pamqp_encode

_UINT32 = struct.Struct(">I")
_INT64 = struct.Struct(">q")
_DOUBLE = struct.Struct(">d")

#: Size of the value after the tag, for the fixed-size field types (RabbitMQ's dialect).
FIXED_SIZE: dict[int, int] = {
    ord("t"): 1, ord("b"): 1, ord("B"): 1, ord("U"): 2, ord("u"): 2, ord("s"): 2,
    ord("I"): 4, ord("i"): 4, ord("L"): 8, ord("l"): 8, ord("f"): 4, ord("d"): 8,
    ord("D"): 5, ord("T"): 8, ord("V"): 0,
}
TAG_TABLE = ord("F")
TAG_ARRAY = ord("A")
#: Types whose value is a 4-byte length and that many bytes (long string, byte array).
LONGSTR_TAGS = frozenset((ord("S"), ord("x")))
#: Every type whose value is a 4-byte length and that many bytes.
SIZED_TAGS = LONGSTR_TAGS | {TAG_TABLE, TAG_ARRAY}
_DECODE_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError, OSError,
                  RecursionError, struct.error)


class Long(int):
    """An integer written as a signed 64-bit long (`l`), RabbitMQ's `long`."""

    __slots__ = ()


class EncodedTable(NamedTuple):
    """A field table already encoded (`data`, its 4-byte length first) and its decoded
    view (`value`, as pamqp would decode `data`), used as a message's headers as they are."""

    data: bytes
    value: dict[str, Any]


# --------------------------------------------------------------------------- encoding


def encode_value(value: Any) -> bytes:
    """One field value with its type tag. Raises TypeError for an unsupported type."""
    if isinstance(value, bool):
        return b"t\x01" if value else b"t\x00"
    if isinstance(value, Long):
        return b"l" + _INT64.pack(value)
    if isinstance(value, int):
        return pamqp_encode.table_integer(value)
    if isinstance(value, float):
        return b"d" + _DOUBLE.pack(value)
    if isinstance(value, decimal.Decimal):
        return b"D" + pamqp_encode.decimal(value)
    if isinstance(value, str):
        data = value.encode("utf-8")
        return b"S" + _UINT32.pack(len(data)) + data
    if isinstance(value, bytes | bytearray):
        return b"x" + _UINT32.pack(len(value)) + bytes(value)
    if isinstance(value, datetime.datetime | time.struct_time):
        return b"T" + pamqp_encode.timestamp(value)
    if isinstance(value, EncodedTable):
        return b"F" + value.data
    if isinstance(value, Mapping):
        return b"F" + encode_table(value)
    if isinstance(value, list | tuple):
        return b"A" + encode_array(value)
    if value is None:
        return b"V"
    raise TypeError(f"cannot encode a field value of type {type(value).__name__}")


def encode_table(table: Mapping[str, Any]) -> bytes:
    """A field table, 4-byte length first, with its keys in the mapping's order."""
    parts: list[bytes] = []
    for key, value in table.items():
        name = key.encode("utf-8")
        if len(name) > 255:
            raise ValueError(f"field table key longer than 255 bytes: {key[:40]!r}...")
        parts.append(bytes((len(name),)) + name)
        parts.append(encode_value(value))
    data = b"".join(parts)
    return _UINT32.pack(len(data)) + data


def encode_array(values: list[Any] | tuple[Any, ...]) -> bytes:
    """A field array, 4-byte length first."""
    data = b"".join(map(encode_value, values))
    return _UINT32.pack(len(data)) + data


def encode_longstr(value: str | bytes) -> bytes:
    """A long string value with its type tag."""
    data = value.encode("utf-8") if isinstance(value, str) else value
    return b"S" + _UINT32.pack(len(data)) + data


def encode_items(items: Iterable[bytes]) -> bytes:
    """A field array, 4-byte length first, from already encoded values."""
    data = b"".join(items)
    return _UINT32.pack(len(data)) + data


def encode_fields(fields: Iterable[tuple[str, bytes]]) -> bytes:
    """A field table, 4-byte length first, from keys and already encoded values."""
    data = b"".join(bytes((len(key.encode("utf-8")),)) + key.encode("utf-8") + raw
                    for key, raw in fields)
    return _UINT32.pack(len(data)) + data


# --------------------------------------------------------------------------- decoding


def _value_end(data: bytes, pos: int, end: int) -> int:
    """The offset after the tagged field value at `pos`, which must end by `end`."""
    if pos >= end:
        raise ValueError("field value missing")
    tag = data[pos]
    size = FIXED_SIZE.get(tag)
    if size is not None:
        after = pos + 1 + size
    elif tag in SIZED_TAGS:
        if pos + 5 > end:
            raise ValueError("field value length runs past its table or array")
        after = pos + 5 + _UINT32.unpack_from(data, pos + 1)[0]
    else:
        raise ValueError(f"unknown field value tag {chr(tag)!r}")
    if after > end:
        raise ValueError("field value runs past its table or array")
    return after


def sized_end(data: bytes, offset: int) -> int:
    """The end of the field table or array at `offset` (4-byte length first)."""
    if offset + 4 > len(data):
        raise ValueError("field table or array truncated")
    end = offset + 4 + _UINT32.unpack_from(data, offset)[0]
    if end > len(data):
        raise ValueError("field table or array length runs past the end")
    return end


def table_items(data: bytes, offset: int = 0) -> list[tuple[str, bytes]]:
    """Split the field table at `offset` (4-byte length first) into its keys and their
    encoded values (type tag included), in wire order, without decoding the values."""
    end = sized_end(data, offset)
    pos = offset + 4
    items: list[tuple[str, bytes]] = []
    while pos < end:
        key_end = pos + 1 + data[pos]
        if key_end > end:
            raise ValueError("field table key runs past its table")
        key = data[pos + 1:key_end].decode("utf-8")
        pos = _value_end(data, key_end, end)
        items.append((key, data[key_end:pos]))
    return items


def array_items(data: bytes, offset: int = 0) -> list[bytes]:
    """Split the field array at `offset` (4-byte length first) into its encoded values
    (type tag included), without decoding them."""
    end = sized_end(data, offset)
    pos = offset + 4
    items: list[bytes] = []
    while pos < end:
        start, pos = pos, _value_end(data, pos, end)
        items.append(data[start:pos])
    return items


def decode_value(raw: bytes) -> Any:
    """pamqp's decoding of one encoded field value (type tag first)."""
    try:
        _consumed, value = pamqp_decode.embedded_value(raw)
    except _DECODE_ERRORS as exc:
        raise ValueError(f"malformed field value: {exc}") from exc
    return value


def table_depth(data: bytes | memoryview, offset: int = 0) -> int:
    """Maximum nesting depth of the field table at `offset` (4-byte length first).

    A flat table is 1; every nested table or array adds a level. Iterative (explicit
    stack), so hostile nesting cannot exhaust the Python stack. Raises ValueError on an
    unknown value tag or a length that runs past its enclosing table, array or `data`.
    """
    try:
        (length,) = _UINT32.unpack_from(data, offset)
    except struct.error:
        raise ValueError("field table truncated") from None
    pos = offset + 4
    end = pos + length
    if end > len(data):
        raise ValueError("field table length runs past the end")
    in_table = True
    depth = max_depth = 1
    stack: list[tuple[int, bool]] = []
    fixed = FIXED_SIZE
    unpack = _UINT32.unpack_from
    while True:
        if pos >= end:
            if pos > end:
                raise ValueError("field value runs past its table or array")
            if not stack:
                return max_depth
            end, in_table = stack.pop()
            depth -= 1
            continue
        if in_table:
            pos += 1 + data[pos]  # shortstr key
            if pos >= end:
                raise ValueError("field table key runs past its table")
        tag = data[pos]
        pos += 1
        size = fixed.get(tag)
        if size is not None:
            pos += size
            continue
        if pos + 4 > end:
            raise ValueError("field value length runs past its table or array")
        (length,) = unpack(data, pos)
        pos += 4
        if tag in LONGSTR_TAGS:
            pos += length
        elif tag in (TAG_TABLE, TAG_ARRAY):
            inner_end = pos + length
            if inner_end > end:
                raise ValueError("nested field table runs past its parent")
            stack.append((end, in_table))
            end = inner_end
            in_table = tag == TAG_TABLE
            depth += 1
            if depth > max_depth:
                max_depth = depth
        else:
            raise ValueError("unknown field value tag")


def decode_table(data: bytes, max_depth: int = 64) -> dict[str, Any]:
    """pamqp's decoding of one whole field table (4-byte length first), after checking
    its structure and nesting. Raises ValueError when it is malformed or too deep."""
    if len(data) < 4 or _UINT32.unpack_from(data, 0)[0] + 4 != len(data):
        raise ValueError("data does not hold one field table")
    if table_depth(data, 0) > max_depth:
        raise ValueError("field table nested too deeply")
    try:
        _consumed, table = pamqp_decode.field_table(data)
    except _DECODE_ERRORS as err:
        raise ValueError("malformed field table") from err
    return table
