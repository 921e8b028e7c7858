"""Fast codec: hand-written `struct` code for the AMQP methods on the message hot path.

Owns the wire format of Basic.Publish, Basic.Ack, Basic.Reject and Basic.Nack (decode,
client -> server), of Basic.Deliver and of publisher-confirm Basic.Ack / Basic.Nack (encode,
server -> client), of content (header frame + body frames split at ``frame_max - 8``),
and a light scanner of the content-header payload that reads only what routing needs
(body size, delivery_mode, priority, expiration, where the headers table lies) without
decoding field tables. Every other method goes through pamqp (`framing.py`); tests check
this module against pamqp byte for byte.

Rules of this module:
- Pure functions, no IO, no logging, no f-strings on the hot path; stdlib `struct` only,
  except `decode_headers` (off the hot path), which hands a depth-checked table to pamqp.
- Method payloads given to the decoders start with the class and method ids; the ids
  are not checked again (the caller dispatched on them). Trailing bytes are ignored.
- Malformed or truncated input raises `ValueError` (`UnicodeDecodeError` is one),
  never `IndexError` or `struct.error`.
- Strings are passed to the encoders as UTF-8 bytes of at most 255 bytes each.
- A message is kept as its raw content-header payload plus its body: deliveries reuse
  both unchanged.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from amqpbroker.protocol.amqp.spec import (
    CLASS_BASIC,
    FRAME_BODY,
    FRAME_END,
    FRAME_END_BYTE,
    FRAME_HEADER,
    FRAME_METHOD,
    FRAME_OVERHEAD,
    METHOD_BASIC_ACK,
    METHOD_BASIC_DELIVER,
    METHOD_BASIC_NACK,
)
from amqpbroker.values import decode_table

__all__ = [
    "HeaderInfo",
    "PublishArgs",
    "decode_ack",
    "decode_headers",
    "decode_nack",
    "decode_publish",
    "decode_reject",
    "encode_ack",
    "encode_content",
    "encode_deliver",
    "encode_method_frame",
    "encode_nack",
    "scan_header",
]


# type(octet) channel(short) size(long)
_FRAME_HEADER = struct.Struct(">BHI")
# Basic.Deliver: frame header + class/method ids + consumer-tag length
_DELIVER_HEAD = struct.Struct(">BHIHHB")
# Basic.Deliver: delivery-tag, redelivered, exchange length
_DELIVER_MID = struct.Struct(">QBB")
# frame-end of one frame + type, channel, size of the next
_END_AND_FRAME_HEADER = struct.Struct(">BBHI")
# A whole Basic.Ack / Basic.Nack frame, server -> client: header, ids, tag, bits, frame-end
_ACK_FRAME = struct.Struct(">BHIHHQBB")
# delivery-tag(longlong) bits(octet), after the 4 bytes of class and method ids
_TAG_BITS = struct.Struct(">QB")
# content header: class-id, weight (skipped), body-size, property-flags
_CONTENT_HEADER = struct.Struct(">HxxQH")
_UINT32 = struct.Struct(">I")
_OCTETS = tuple(bytes((i,)) for i in range(256))

_CONTENT_HEADER_SIZE = 14
_ACK_PAYLOAD_SIZE = 13  # class(2) method(2) delivery-tag(8) bits(1)
# Basic.Deliver payload without its strings: class(2) method(2) consumer-tag length(1)
# delivery-tag(8) redelivered(1) exchange length(1) routing-key length(1)
_DELIVER_FIXED = 16

# Property flags of Basic (bit 15 first); bit 0 is the continuation flag.
_CONTENT_TYPE = 0x8000
_CONTENT_ENCODING = 0x4000
_HEADERS = 0x2000
_DELIVERY_MODE = 0x1000
_PRIORITY = 0x0800
_CORRELATION_ID = 0x0400
_REPLY_TO = 0x0200
_EXPIRATION = 0x0100
_MESSAGE_ID = 0x0080
_TIMESTAMP = 0x0040
_TYPE = 0x0020
_USER_ID = 0x0010
_APP_ID = 0x0008
_CLUSTER_ID = 0x0004
_CONTINUATION = 0x0001
_AFTER_EXPIRATION = 0x00FC  # message_id .. cluster_id

class HeaderInfo(NamedTuple):
    """What routing and queueing need from a content header, read without decoding it."""

    body_size: int
    delivery_mode: int  # 0 when absent
    priority: int  # -1 when absent
    expiration: str | None
    headers_span: tuple[int, int] | None  # [start, end) of the table incl. its length
    user_id: str | None


class PublishArgs(NamedTuple):
    """The arguments of a Basic.Publish."""

    exchange: str
    routing_key: str
    mandatory: bool
    immediate: bool


# NamedTuple's generated __new__ costs twice as much as building the tuple directly.
_new_tuple = tuple.__new__

# --------------------------------------------------------------------------- decoding


def decode_publish(payload: bytes | memoryview) -> PublishArgs:
    """Basic.Publish (60/40) method payload -> (exchange, routing_key, mandatory, immediate).

    The ticket short is skipped. Raises ValueError on truncated input or invalid UTF-8.
    """
    try:
        end = 7 + payload[6]
        rk_end = end + 1 + payload[end]
        bits = payload[rk_end]  # present => both names above are complete
    except IndexError:
        raise ValueError("truncated Basic.Publish") from None
    return _new_tuple(PublishArgs, (
        str(payload[7:end], "utf-8"),
        str(payload[end + 1 : rk_end], "utf-8"),
        bool(bits & 1),
        bool(bits & 2),
    ))


def decode_ack(payload: bytes | memoryview) -> tuple[int, bool]:
    """Basic.Ack (60/80) method payload -> (delivery_tag, multiple)."""
    try:
        tag, bits = _TAG_BITS.unpack_from(payload, 4)
    except struct.error:
        raise ValueError("truncated Basic.Ack") from None
    return tag, bool(bits & 1)


def decode_reject(payload: bytes | memoryview) -> tuple[int, bool]:
    """Basic.Reject (60/90) method payload -> (delivery_tag, requeue)."""
    try:
        tag, bits = _TAG_BITS.unpack_from(payload, 4)
    except struct.error:
        raise ValueError("truncated Basic.Reject") from None
    return tag, bool(bits & 1)


def decode_nack(payload: bytes | memoryview) -> tuple[int, bool, bool]:
    """Basic.Nack (60/120) method payload -> (delivery_tag, multiple, requeue)."""
    try:
        tag, bits = _TAG_BITS.unpack_from(payload, 4)
    except struct.error:
        raise ValueError("truncated Basic.Nack") from None
    return tag, bool(bits & 1), bool(bits & 2)


# --------------------------------------------------------------------------- encoding


def encode_method_frame(channel: int, payload: bytes) -> bytes:
    """Wrap an already encoded method payload (class and method ids first) in a frame."""
    try:
        head = _FRAME_HEADER.pack(FRAME_METHOD, channel, len(payload))
    except struct.error:
        raise ValueError("channel out of range") from None
    return head + payload + FRAME_END_BYTE


def encode_content(channel: int, header_payload: bytes, body: bytes, frame_max: int) -> bytes:
    """Content header frame (payload reused unchanged) + body frame(s).

    Each body frame's payload is at most ``frame_max - 8`` bytes; ``frame_max == 0`` means
    no limit (as negotiated in Connection.Tune). An empty body produces no body frame.
    """
    parts: list[bytes | memoryview] = []
    try:
        parts.append(_FRAME_HEADER.pack(FRAME_HEADER, channel, len(header_payload)))
    except struct.error:
        raise ValueError("channel out of range") from None
    parts.append(header_payload)
    parts.append(FRAME_END_BYTE)
    _append_body(parts, channel, body, frame_max)
    return b"".join(parts)


def encode_deliver(
    channel: int,
    consumer_tag: bytes,
    delivery_tag: int,
    redelivered: bool,
    exchange: bytes,
    routing_key: bytes,
    header_payload: bytes,
    body: bytes,
    frame_max: int,
) -> bytes:
    """Basic.Deliver method frame + content header frame + body frame(s), as one bytes.

    Strings are UTF-8 bytes of at most 255 bytes each. The header payload is reused
    unchanged; the body is split as in `encode_content`.
    """
    ct_len = len(consumer_tag)
    ex_len = len(exchange)
    rk_len = len(routing_key)
    body_len = len(body)
    try:
        parts: list[bytes | memoryview] = [
            _DELIVER_HEAD.pack(
                FRAME_METHOD, channel, _DELIVER_FIXED + ct_len + ex_len + rk_len, CLASS_BASIC,
                METHOD_BASIC_DELIVER, ct_len,
            ),
            consumer_tag,
            _DELIVER_MID.pack(delivery_tag, 1 if redelivered else 0, ex_len),
            exchange,
            _OCTETS[rk_len],
            routing_key,
            _END_AND_FRAME_HEADER.pack(FRAME_END, FRAME_HEADER, channel, len(header_payload)),
            header_payload,
        ]
    except (struct.error, IndexError):
        raise ValueError("Basic.Deliver field out of range") from None
    if body_len and (body_len <= frame_max - FRAME_OVERHEAD or frame_max == 0):
        # the common case: one body frame
        parts.append(_END_AND_FRAME_HEADER.pack(FRAME_END, FRAME_BODY, channel, body_len))
        parts.append(body)
        parts.append(FRAME_END_BYTE)
    else:
        parts.append(FRAME_END_BYTE)
        _append_body(parts, channel, body, frame_max)
    return b"".join(parts)


def _append_body(
    parts: list[bytes | memoryview], channel: int, body: bytes, frame_max: int
) -> None:
    """Append body frames for `body` (none when empty), each payload <= frame_max - 8."""
    size = len(body)
    if not size:
        return
    if frame_max == 0:
        chunk = size
    else:
        chunk = frame_max - FRAME_OVERHEAD
        if chunk <= 0:
            raise ValueError("frame_max too small for a body frame")
    if size <= chunk:
        parts.append(_FRAME_HEADER.pack(FRAME_BODY, channel, size))
        parts.append(body)
        parts.append(FRAME_END_BYTE)
        return
    view = memoryview(body)
    pack = _FRAME_HEADER.pack
    for start in range(0, size, chunk):
        piece = view[start : start + chunk]
        parts.append(pack(FRAME_BODY, channel, len(piece)))
        parts.append(piece)
        parts.append(FRAME_END_BYTE)


def encode_ack(channel: int, delivery_tag: int, multiple: bool) -> bytes:
    """A whole Basic.Ack frame (server -> client, publisher confirms)."""
    try:
        return _ACK_FRAME.pack(
            FRAME_METHOD, channel, _ACK_PAYLOAD_SIZE, CLASS_BASIC, METHOD_BASIC_ACK, delivery_tag,
            1 if multiple else 0, FRAME_END,
        )
    except struct.error:
        raise ValueError("Basic.Ack field out of range") from None


def encode_nack(channel: int, delivery_tag: int, multiple: bool, requeue: bool) -> bytes:
    """A whole Basic.Nack frame (server -> client, publisher confirms)."""
    bits = (1 if multiple else 0) | (2 if requeue else 0)
    try:
        return _ACK_FRAME.pack(FRAME_METHOD, channel, _ACK_PAYLOAD_SIZE, CLASS_BASIC,
                               METHOD_BASIC_NACK, delivery_tag, bits, FRAME_END)
    except struct.error:
        raise ValueError("Basic.Nack field out of range") from None


# --------------------------------------------------------------------------- content header


def _shortstr_at(data: bytes, off: int) -> tuple[str, int]:
    """The UTF-8 short string at `off` and the offset after it."""
    start = off + 1
    end = start + data[off]
    if end > len(data):
        raise ValueError("content header truncated")
    return str(data[start:end], "utf-8"), end


def scan_header(header_payload: bytes) -> HeaderInfo:
    """Read body size, delivery_mode, priority, expiration and the headers' span.

    Walks the 14 Basic properties in wire order, skipping strings by their length and
    the headers table by its 4-byte length, decoding no table. Raises ValueError when a
    length runs past the end, the class id is not 60 or the continuation flag is set.
    """
    hp = header_payload
    try:
        class_id, body_size, flags = _CONTENT_HEADER.unpack_from(hp, 0)
    except struct.error:
        raise ValueError("truncated content header") from None
    if class_id != CLASS_BASIC:
        raise ValueError("content header class id is not 60 (basic)")
    if flags & _CONTINUATION:
        raise ValueError("content header property flags continue past 16 bits")
    if not flags:
        return _new_tuple(HeaderInfo, (body_size, 0, -1, None, None, None))
    off = _CONTENT_HEADER_SIZE
    delivery_mode = 0
    priority = -1
    expiration = None
    headers_span = None
    user_id = None
    try:
        if flags & _CONTENT_TYPE:
            off += 1 + hp[off]
        if flags & _CONTENT_ENCODING:
            off += 1 + hp[off]
        if flags & _HEADERS:
            start = off
            off += 4 + _UINT32.unpack_from(hp, off)[0]
            headers_span = (start, off)
        if flags & _DELIVERY_MODE:
            delivery_mode = hp[off]
            off += 1
        if flags & _PRIORITY:
            priority = hp[off]
            off += 1
        if flags & _CORRELATION_ID:
            off += 1 + hp[off]
        if flags & _REPLY_TO:
            off += 1 + hp[off]
        if flags & _EXPIRATION:
            expiration, off = _shortstr_at(hp, off)
        if flags & _AFTER_EXPIRATION:
            if flags & _MESSAGE_ID:
                off += 1 + hp[off]
            if flags & _TIMESTAMP:
                off += 8
            if flags & _TYPE:
                off += 1 + hp[off]
            if flags & _USER_ID:
                user_id, off = _shortstr_at(hp, off)
            if flags & _APP_ID:
                off += 1 + hp[off]
            if flags & _CLUSTER_ID:
                off += 1 + hp[off]
    except (IndexError, struct.error):
        raise ValueError("content header truncated") from None
    if off > len(hp):
        raise ValueError("content header truncated")
    return _new_tuple(
        HeaderInfo, (body_size, delivery_mode, priority, expiration, headers_span, user_id)
    )


def decode_headers(
    header_payload: bytes, span: tuple[int, int], max_depth: int = 64
) -> dict[str, object]:
    """Decode the headers table found by `scan_header` (its `headers_span`): depth and
    structure checked first (`values.decode_table`), then pamqp's decoding. Raises
    ValueError when it is malformed or nested deeper than `max_depth`."""
    start, end = span
    return decode_table(bytes(header_payload[start:end]), max_depth)
