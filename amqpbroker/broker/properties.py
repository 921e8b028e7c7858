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

Headers tables are encoded and split by `amqpbroker.values`.
"""

from __future__ import annotations

import copy
import struct
from collections.abc import Mapping
from typing import Any

from pamqp import decode as pamqp_decode
from pamqp import encode as pamqp_encode
from pamqp.commands import Basic

from amqpbroker import errors
from amqpbroker.broker.message import HeadersDecoder, Message
from amqpbroker.values import EncodedTable, decode_table, encode_table, sized_end

BASIC_CLASS_ID = 60

#: Property names in wire order, as pamqp names them (`message_type` is AMQP's `type`).
NAMES: tuple[str, ...] = tuple(Basic.Properties.__slots__)
#: Property flag bit of each name.
FLAGS: dict[str, int] = dict(Basic.Properties.flags)
#: AMQP domain of each name: shortstr, table, octet or timestamp.
TYPES: dict[str, str] = {name: getattr(Basic.Properties, "_" + name) for name in NAMES}

_PREFIX = struct.Struct(">HHQH")  # class id, weight, body size, property flags
_UINT32 = struct.Struct(">I")
_UINT64 = struct.Struct(">Q")
_CONTINUATION = 0x0001


def decode_headers(header: bytes, span: tuple[int, int]) -> dict[str, Any]:
    """`Message` decoder for messages built here: pamqp's decoding of the table at `span`
    ([start, end) incl. its length). Raises ValueError when it is malformed."""
    return decode_table(bytes(header[span[0]:span[1]]))


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
            end = sized_end(header, pos)
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
