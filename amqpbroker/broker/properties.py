"""Decoding and re-encoding Basic properties, off the hot path.

Publishing and delivering never decode a content header: a `Message` keeps the payload
as it came and hands it on unchanged. Only the rare paths that must change a message's
properties (dead-lettering, tests, tools) come here.

- `decode` reads every property (pamqp's `Basic.Properties`; headers from the message's
  own, cached, decoded view).
- `build` makes a new `Message` from a `Basic.Properties` and a body.
- `replace` makes a new `Message` with some properties changed. Unchanged properties
  are copied byte for byte, so what pamqp would refuse or alter (delivery_mode 0, a
  cluster_id, an empty string, a string that is not UTF-8) survives.

Headers tables are written by this module's encoder, not pamqp's, which sorts keys and
always picks the smallest integer type and float32. Here keys keep their dict order,
`Long` forces a signed 64-bit `l`, a float is a double `d`, bytes are a byte array `x`,
and `EncodedTable` passes a table already encoded (with its decoded view) through as it
is. `table_items` and `array_items` split an encoded table or array into its encoded
values so that callers can keep values they do not change exactly as they were.
"""

from __future__ import annotations

import copy
import datetime
import decimal
import struct
import time
from collections.abc import Mapping
from typing import Any, NamedTuple

from pamqp import decode as pamqp_decode
from pamqp import encode as pamqp_encode
from pamqp.commands import Basic

from amqpbroker import errors
from amqpbroker.broker.message import HeadersDecoder, Message

BASIC_CLASS_ID = 60

#: Property names in wire order, as pamqp names them (`message_type` is AMQP's `type`).
NAMES: tuple[str, ...] = tuple(Basic.Properties.__slots__)
#: Property flag bit of each name.
FLAGS: dict[str, int] = dict(Basic.Properties.flags)
#: AMQP domain of each name: shortstr, table, octet or timestamp.
TYPES: dict[str, str] = {name: getattr(Basic.Properties, "_" + name) for name in NAMES}

_PREFIX = struct.Struct(">HHQH")  # class id, weight, body size, property flags
_UINT32 = struct.Struct(">I")
_INT64 = struct.Struct(">q")
_UINT64 = struct.Struct(">Q")
_DOUBLE = struct.Struct(">d")
_CONTINUATION = 0x0001

# Size of the value after the tag for fixed-size field types.
_FIXED_SIZE: dict[int, int] = {
    ord("t"): 1, ord("b"): 1, ord("B"): 1, ord("U"): 2, ord("u"): 2, ord("s"): 2,
    ord("I"): 4, ord("i"): 4, ord("L"): 8, ord("l"): 8, ord("f"): 4, ord("d"): 8,
    ord("D"): 5, ord("T"): 8, ord("V"): 0,
}
# Types whose value is a 4-byte length and that many bytes.
_SIZED = frozenset(map(ord, "SxFA"))


class Long(int):
    """An integer written as a signed 64-bit long (`l`), RabbitMQ's `long`."""

    __slots__ = ()


class EncodedTable(NamedTuple):
    """A field table already encoded (`data`, its 4-byte length first) and its decoded
    view (`value`, as pamqp would decode `data`), used as a message's headers as they are."""

    data: bytes
    value: dict[str, Any]


# --------------------------------------------------------------------------- field tables


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


def _value_end(data: bytes, pos: int, end: int) -> int:
    """The offset after the tagged field value at `pos`, which must end by `end`."""
    if pos >= end:
        raise ValueError("field value missing")
    tag = data[pos]
    size = _FIXED_SIZE.get(tag)
    if size is not None:
        after = pos + 1 + size
    elif tag in _SIZED:
        if pos + 5 > end:
            raise ValueError("field value length runs past its table or array")
        after = pos + 5 + _UINT32.unpack_from(data, pos + 1)[0]
    else:
        raise ValueError(f"unknown field value tag {chr(tag)!r}")
    if after > end:
        raise ValueError("field value runs past its table or array")
    return after


def _sized_end(data: bytes, offset: int) -> int:
    if offset + 4 > len(data):
        raise ValueError("field table or array truncated")
    end = offset + 4 + _UINT32.unpack_from(data, offset)[0]
    if end > len(data):
        raise ValueError("field table or array length runs past the end")
    return end


def table_items(data: bytes, offset: int = 0) -> list[tuple[str, bytes]]:
    """Split the field table at `offset` (4-byte length first) into its keys and their
    encoded values (type tag included), in wire order, without decoding the values."""
    end = _sized_end(data, offset)
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
    end = _sized_end(data, offset)
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
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, OSError,
            RecursionError, struct.error) as exc:
        raise ValueError(f"malformed field value: {exc}") from exc
    return value


def decode_headers(header: bytes, span: tuple[int, int]) -> dict[str, Any]:
    """`Message` decoder for messages built here: pamqp's decoding of the table at `span`
    ([start, end) incl. its length). Raises ValueError when it is malformed."""
    try:
        _consumed, table = pamqp_decode.field_table(bytes(header[span[0]:span[1]]))
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, OSError,
            RecursionError, struct.error) as exc:
        raise ValueError(f"malformed headers table: {exc}") from exc
    return table


# --------------------------------------------------------------------------- content header


def split_header(header: bytes) -> dict[str, bytes]:
    """The encoded value of each property present in a content-header payload, by name,
    in wire order. Raises ValueError for a payload that is not a Basic content header."""
    try:
        class_id, _weight, _body_size, flags = _PREFIX.unpack_from(header, 0)
    except struct.error:
        raise ValueError("content header truncated") from None
    if class_id != BASIC_CLASS_ID:
        raise ValueError("content header class id is not 60 (basic)")
    if flags & _CONTINUATION:
        raise ValueError("content header property flags continue past 16 bits")
    pos = _PREFIX.size
    values: dict[str, bytes] = {}
    for name in NAMES:
        if not flags & FLAGS[name]:
            continue
        kind = TYPES[name]
        if kind == "shortstr":
            end = pos + 1 + (header[pos] if pos < len(header) else 0)
        elif kind == "table":
            end = _sized_end(header, pos)
        elif kind == "octet":
            end = pos + 1
        else:  # timestamp
            end = pos + 8
        if end > len(header):
            raise ValueError("content header truncated")
        values[name] = header[pos:end]
        pos = end
    return values


def _encode_property(name: str, value: Any) -> bytes:
    kind = TYPES[name]
    if kind == "shortstr":
        if not isinstance(value, str):
            raise TypeError(f"{name} must be a str, not {type(value).__name__}")
        data = value.encode("utf-8")
        if len(data) > 255:
            raise ValueError(f"{name} is longer than 255 bytes")
        return bytes((len(data),)) + data
    if kind == "octet":
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
            raise ValueError(f"{name} must be an int from 0 to 255, not {value!r}")
        return bytes((value,))
    if kind == "timestamp":
        if isinstance(value, int) and not isinstance(value, bool):
            return _UINT64.pack(value)
        return pamqp_encode.timestamp(value)
    # table
    if isinstance(value, EncodedTable):
        return value.data
    if not isinstance(value, Mapping):
        raise TypeError(f"headers must be a dict, not {type(value).__name__}")
    return encode_table(value)


def _headers_view(value: Any) -> dict[str, Any] | None:
    """What `message.headers` returns for a headers property set to `value`."""
    if isinstance(value, EncodedTable):
        return value.value
    return value if isinstance(value, dict) else dict(value)


def _shortstr_value(raw: bytes | None) -> str | None:
    return None if raw is None else raw[1:].decode("utf-8", "replace")


def _make(exchange: str, routing_key: str, values: Mapping[str, bytes], body: bytes,
          headers: dict[str, Any] | None, decoder: HeadersDecoder) -> Message:
    """A Message from encoded property values; scanned fields recomputed from them."""
    flags = 0
    parts: list[bytes] = []
    pos = _PREFIX.size
    headers_span: tuple[int, int] | None = None
    for name in NAMES:
        raw = values.get(name)
        if raw is None:
            continue
        flags |= FLAGS[name]
        if name == "headers":
            headers_span = (pos, pos + len(raw))
        parts.append(raw)
        pos += len(raw)
    header = _PREFIX.pack(BASIC_CLASS_ID, 0, len(body), flags) + b"".join(parts)
    delivery_mode = values.get("delivery_mode")
    priority = values.get("priority")
    message = Message(
        exchange=exchange,
        routing_key=routing_key,
        header=header,
        body=body,
        delivery_mode=delivery_mode[0] if delivery_mode else 0,
        priority=priority[0] if priority else -1,
        expiration=_shortstr_value(values.get("expiration")),
        headers_span=headers_span,
        user_id=_shortstr_value(values.get("user_id")),
        decoder=decoder,
    )
    message._headers = headers
    return message


# --------------------------------------------------------------------------- public API


def headers_of(message: Message) -> dict[str, Any] | None:
    """`message.headers`, raising ValueError (not a connection error) when the table
    cannot be decoded: off the hot path there is no publishing connection to close."""
    try:
        return message.headers
    except errors.AMQPConnectionError as exc:
        raise ValueError(str(exc)) from exc


def decode(message: Message) -> Basic.Properties:
    """Every property of `message`. The headers are a copy of `message.headers` (so the
    message's decoded view is reused and cannot be changed through the result); other
    properties are decoded with pamqp. Raises ValueError for a malformed header."""
    properties = Basic.Properties()
    for name, raw in split_header(message.header).items():
        if name == "headers":
            value: Any = copy.deepcopy(headers_of(message))
        else:
            try:
                _consumed, value = pamqp_decode.by_type(raw, TYPES[name])
            except (ValueError, OverflowError, OSError) as exc:
                raise ValueError(f"cannot decode property {name}: {exc}") from exc
        setattr(properties, name, value)
    return properties


def build(exchange: str, routing_key: str, properties: Basic.Properties,
          body: bytes) -> Message:
    """A new Message carrying `properties` and `body`.

    As pamqp's marshalling does, properties that are None or '' are left out; unlike it,
    nothing is validated (a broker passes delivery_mode 3 on), and the headers are
    written by this module's encoder. `message.headers` is `properties.headers` itself,
    so it is never decoded.
    """
    values: dict[str, bytes] = {}
    for name in NAMES:
        value = getattr(properties, name, None)
        if value is None or (isinstance(value, str) and value == ""):
            continue
        values[name] = _encode_property(name, value)
    headers = properties.headers
    view = None if headers is None else _headers_view(headers)
    return _make(exchange, routing_key, values, body, view, decode_headers)


def replace(message: Message, *, exchange: str | None = None, routing_key: str | None = None,
            **changes: Any) -> Message:
    """A new Message with the same body and the property `changes` (pamqp names: e.g.
    ``headers={...}``, ``expiration=None``, ``reply_to='q'``); None or '' removes a
    property. `exchange` and `routing_key` default to the message's own. Properties not
    changed are copied byte for byte. `headers` may be a dict (written in its order) or
    an `EncodedTable`; when unchanged, the message's decoded view and decoder are kept.
    """
    unknown = set(changes).difference(NAMES)
    if unknown:
        raise TypeError(f"unknown properties: {', '.join(sorted(unknown))}")
    values = split_header(message.header)
    headers = message._headers
    decoder = message.decoder
    for name, value in changes.items():
        if name == "headers":
            decoder = decode_headers
            headers = None if value is None else _headers_view(value)
        if value is None or (isinstance(value, str) and value == ""):
            values.pop(name, None)
        else:
            values[name] = _encode_property(name, value)
    return _make(message.exchange if exchange is None else exchange,
                 message.routing_key if routing_key is None else routing_key,
                 values, message.body, headers, decoder)
