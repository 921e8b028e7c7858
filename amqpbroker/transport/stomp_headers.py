"""STOMP headers <-> AMQP properties and headers, as RabbitMQ's STOMP plugin maps them.

SEND -> `Message`: `content-type`, `content-encoding`, `correlation-id`, `expiration`,
`type`, `user-id`, `app-id`, `amqp-message-id`, `reply-to`, `priority`, `timestamp` and
`persistent:true` become basic properties; every other header but `destination` becomes
an AMQP header (longstr). The message is built once, here, at the edge; SENDs that repeat
the same headers and body size reuse the content header encoded for the first of them.

`Message` -> MESSAGE headers: the AMQP headers of type longstr, signed int and long
(others are dropped), then the properties. A MESSAGE's header block depends only on the message's
content header and the version, so it is encoded once per distinct header and kept in
a bounded cache; a malformed header or property is left out, never an error.
"""

from __future__ import annotations

import contextlib
import datetime
import struct
from collections.abc import Mapping
from typing import Any

from pamqp import decode as pamqp_decode
from pamqp.commands import Basic

from amqpbroker import values
from amqpbroker.broker import properties
from amqpbroker.broker.message import Message
from amqpbroker.protocol.stomp.frames import header_lines
from amqpbroker.transport import bridge
from amqpbroker.transport.stomp_destinations import reply_to_header

_INT, _LONG = struct.Struct(">i"), struct.Struct(">q")

#: STOMP header -> basic property (pamqp's name), strings.
STRING_PROPERTIES = {
    "content-type": "content_type", "content-encoding": "content_encoding",
    "correlation-id": "correlation_id", "expiration": "expiration", "type": "message_type",
    "user-id": "user_id", "app-id": "app_id", "amqp-message-id": "message_id",
    "reply-to": "reply_to"}
INTEGER_PROPERTIES = {"priority": "priority", "timestamp": "timestamp"}
NOT_COPIED = frozenset(("destination", "persistent", *STRING_PROPERTIES, *INTEGER_PROPERTIES))
#: Headers every MESSAGE sets itself: AMQP headers of these names are left out.
FRAME_HEADERS = frozenset(("subscription", "destination", "message-id", "redelivered", "ack",
                           "content-length"))
_PROPERTY_HEADERS = {value: key for key, value in STRING_PROPERTIES.items()}

_BLOCKS: dict[tuple[bytes, str], bytes] = {}
_BLOCKS_MAX = 4096
_HEADERS: dict[tuple[tuple[tuple[str, str], ...], str | None, int], bytes] = {}
_HEADERS_MAX = 4096


def build_message(exchange: str, routing_key: str, headers: Mapping[str, str], body: bytes,
                  reply_to: str | None = None) -> Message:
    """The broker message of a SEND (`reply_to`: the rewritten `reply-to`, if any).
    Raises ValueError naming a header that cannot be a property (too long, ...)."""
    key = (tuple(headers.items()), reply_to, len(body))
    header = _HEADERS.get(key)
    if header is not None:
        return bridge.build_message(exchange, routing_key, header, body)
    message = _encode(exchange, routing_key, headers, body, reply_to)
    if len(_HEADERS) >= _HEADERS_MAX:
        _HEADERS.clear()
    _HEADERS[key] = message.header
    return message


def _encode(exchange: str, routing_key: str, headers: Mapping[str, str], body: bytes,
            reply_to: str | None) -> Message:
    props = Basic.Properties()
    custom: dict[str, Any] = {}
    for name, value in headers.items():
        if name in NOT_COPIED:
            prop = STRING_PROPERTIES.get(name)
            if prop is not None:
                setattr(props, prop, value)
            elif name in INTEGER_PROPERTIES:
                if not (value.isascii() and value.isdigit()):
                    raise ValueError(f"'{name}' must be a non-negative integer")
                setattr(props, INTEGER_PROPERTIES[name], int(value))
            elif name == "persistent" and value in ("true", "True"):
                props.delivery_mode = 2
        else:
            custom[name] = value
    if reply_to is not None:
        props.reply_to = reply_to
    if custom:
        props.headers = custom
    try:
        return properties.build(exchange, routing_key, props, body)
    except (ValueError, TypeError) as exc:
        raise ValueError(str(exc)) from None


def message_headers(message: Message, version: str) -> bytes:
    """The MESSAGE header lines (LF-ended) carrying `message`'s headers and properties."""
    key = (message.header, version)
    block = _BLOCKS.get(key)
    if block is None:
        if len(_BLOCKS) >= _BLOCKS_MAX:
            _BLOCKS.clear()
        block = _BLOCKS[key] = header_lines(stomp_headers(message), version)
    return block


def stomp_headers(message: Message) -> list[tuple[str, str]]:
    """`message`'s AMQP headers and properties as STOMP headers, in RabbitMQ's order."""
    try:
        raw = properties.split_header(message.header)
    except ValueError:
        return []
    out: list[tuple[str, str]] = []
    if "headers" in raw:
        with contextlib.suppress(ValueError, IndexError, struct.error):
            out.extend(_custom(values.table_items(raw["headers"])))
    for name, data in raw.items():
        if name == "headers":
            continue
        try:
            _consumed, value = pamqp_decode.by_type(data, properties.TYPES[name])
        except (ValueError, TypeError, OverflowError, OSError, IndexError):
            continue
        out.extend(_property(name, value))
    return out


def _custom(items: list[tuple[str, bytes]]) -> list[tuple[str, str]]:
    """The headers of type longstr, signed int and long (RabbitMQ drops the others:
    bool, byte, table, array, ...), each encoded value with its type tag first."""
    out = []
    for name, data in items:
        if name in FRAME_HEADERS:
            continue
        tag = data[:1]
        if tag == b"S":
            out.append((name, data[5:].decode("utf-8", "replace")))
        elif tag == b"I":
            out.append((name, str(_INT.unpack(data[1:])[0])))
        elif tag == b"l":
            out.append((name, str(_LONG.unpack(data[1:])[0])))
    return out


def _property(name: str, value: Any) -> list[tuple[str, str]]:
    if value is None:
        return []
    if name == "delivery_mode":
        return [("persistent", "true" if value == 2 else str(value))]
    if name == "priority":
        return [("priority", str(value))]
    if name == "timestamp":
        if isinstance(value, datetime.datetime):
            moment = value if value.tzinfo else value.replace(tzinfo=datetime.UTC)
            return [("timestamp", str(int(moment.timestamp())))]
        return [("timestamp", str(value))] if isinstance(value, int) else []
    stomp_name = _PROPERTY_HEADERS.get(name)
    if stomp_name is None or not isinstance(value, str):
        return []
    if name == "reply_to":
        value = reply_to_header(value)
    return [(stomp_name, value)]
