"""MQTT packets <-> bytes, for protocol levels 3 (3.1), 4 (3.1.1) and 5.

`split` finds one complete packet in a buffer (the remaining length is checked before
anything is read); `decode` turns its body into a packet, checking every length against
the remaining length, every string for UTF-8 (and U+0000), the reserved flag bits, and
MQTT 5 properties (known identifiers, allowed repeats). Errors raise `MalformedPacket`
with the MQTT 5 reason code to close with. `encode` writes any packet; `encode_publish`
is the struct-only encoder of the delivery hot path.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from amqpbroker.protocol.mqtt import packets as p

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")


class MalformedPacket(Exception):
    """The bytes are not a valid packet; `code` is the MQTT 5 reason code to close with."""

    def __init__(self, text: str, code: int = p.MALFORMED_PACKET) -> None:
        super().__init__(text)
        self.code = code


# --------------------------------------------------------------------------- framing


def encode_varint(value: int) -> bytes:
    """A variable byte integer (0 to 268435455)."""
    if not 0 <= value <= 268_435_455:
        raise ValueError(f"variable byte integer out of range: {value}")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def split(buffer: bytes, offset: int, max_size: int) -> tuple[int, int, int] | None:
    """(first byte, body start, body end) of the packet at `offset` in `buffer`, None
    while it is incomplete. Raises MalformedPacket for a remaining length of more than
    four bytes, and PACKET_TOO_LARGE (0x95) for a packet longer than `max_size`."""
    size = len(buffer)
    if size < offset + 2:
        return None
    length = 0
    shift = 0
    pos = offset + 1
    while True:
        if pos >= size:
            return None
        byte = buffer[pos]
        length |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            break
        shift += 7
        if pos - offset > 4:
            raise MalformedPacket("remaining length longer than four bytes")
    if pos - offset + length > max_size:
        raise MalformedPacket("packet too large", p.PACKET_TOO_LARGE)
    if pos + length > size:
        return None
    return buffer[offset], pos, pos + length


def _fixed(first: int, body: bytes) -> bytes:
    return bytes((first,)) + encode_varint(len(body)) + body


# --------------------------------------------------------------------------- reading


def _text(raw: bytes) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedPacket("string is not valid UTF-8") from None
    if "\x00" in text:
        raise MalformedPacket("string contains U+0000")
    return text


class _Reader:
    """A cursor over one packet body; every read checks the bytes are there."""

    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def take(self, count: int) -> bytes:
        pos = self.pos
        if pos + count > self.end:
            raise MalformedPacket("packet shorter than its contents")
        self.pos = pos + count
        return self.data[pos:pos + count]

    def u8(self) -> int:
        if self.pos >= self.end:
            raise MalformedPacket("packet shorter than its contents")
        self.pos += 1
        return self.data[self.pos - 1]

    def u16(self) -> int:
        value: int = _U16.unpack(self.take(2))[0]
        return value

    def u32(self) -> int:
        value: int = _U32.unpack(self.take(4))[0]
        return value

    def varint(self) -> int:
        value = 0
        for shift in (0, 7, 14, 21):
            byte = self.u8()
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
        raise MalformedPacket("variable byte integer longer than four bytes")

    def binary(self) -> bytes:
        return self.take(self.u16())

    def utf8(self) -> str:
        return _text(self.take(self.u16()))

    def left(self) -> int:
        return self.end - self.pos

    def done(self) -> None:
        if self.pos != self.end:
            raise MalformedPacket("packet longer than its contents")

    def properties(self) -> p.Properties:
        length = self.varint()
        if length > self.left():
            raise MalformedPacket("properties longer than the packet")
        end = self.pos + length
        inner = _Reader(self.data, self.pos, end)
        self.pos = end
        found: p.Properties = {}
        while inner.pos < end:
            ident = inner.varint()
            known = p.PROPERTIES.get(ident)
            if known is None:
                raise MalformedPacket(f"unknown property 0x{ident:02x}")
            name, kind = known
            value: Any
            if kind == p.BYTE:
                value = inner.u8()
            elif kind == p.UINT16:
                value = inner.u16()
            elif kind == p.UINT32:
                value = inner.u32()
            elif kind == p.VARINT:
                value = inner.varint()
            elif kind == p.UTF8:
                value = inner.utf8()
            elif kind == p.BINARY:
                value = inner.binary()
            else:
                value = (inner.utf8(), inner.utf8())
            if name in p.REPEATABLE:
                found.setdefault(name, []).append(value)
            elif name in found:
                raise MalformedPacket(f"property {name} given twice", p.PROTOCOL_ERROR)
            else:
                found[name] = value
        return found


# --------------------------------------------------------------------------- decoding


def _expect_flags(first: int, flags: int) -> None:
    if first & 0x0F != flags:
        raise MalformedPacket("reserved flag bits of the fixed header are wrong")


def _connect(first: int, r: _Reader, version: int) -> p.Connect:
    _expect_flags(first, 0)
    name = r.utf8()
    level = r.u8()
    if (level not in p.PROTOCOL_NAMES) or p.PROTOCOL_NAMES[level] != name:
        raise MalformedPacket(f"unsupported protocol {name!r} level {level}",
                              p.UNSUPPORTED_PROTOCOL_VERSION)
    flags = r.u8()
    if flags & 0x01:
        raise MalformedPacket("reserved connect flag set")
    keepalive = r.u16()
    properties = r.properties() if level == p.MQTT_5 else {}
    client_id = r.utf8()
    will = None
    will_qos = (flags >> 3) & 0x03
    if flags & 0x04:
        if will_qos == 3:
            raise MalformedPacket("will QoS 3")
        will_props = r.properties() if level == p.MQTT_5 else {}
        will = p.Will(r.utf8(), r.binary(), will_qos, bool(flags & 0x20), will_props)
    elif will_qos or flags & 0x20:
        raise MalformedPacket("will QoS or retain without a will")
    username = r.utf8() if flags & 0x80 else None
    if flags & 0x40 and not flags & 0x80 and level != p.MQTT_5:
        raise MalformedPacket("password without a user name")
    password = r.binary() if flags & 0x40 else None
    r.done()
    return p.Connect(level, client_id, bool(flags & 0x02), keepalive, will, username,
                     password, properties)


def _connack(first: int, r: _Reader, version: int) -> p.Connack:
    _expect_flags(first, 0)
    flags = r.u8()
    if flags & 0xFE:
        raise MalformedPacket("reserved connack flags set")
    code = r.u8()
    properties = r.properties() if version == p.MQTT_5 else {}
    r.done()
    return p.Connack(bool(flags & 1), code, properties)


def decode_publish(first: int, data: bytes, start: int, end: int, version: int
                   ) -> p.Publish:
    """A PUBLISH body (the hot path: straight from the buffer's bytes)."""
    qos = (first >> 1) & 0x03
    if qos == 3:
        raise MalformedPacket("PUBLISH with QoS 3")
    if start + 2 > end:
        raise MalformedPacket("packet shorter than its contents")
    length = (data[start] << 8) | data[start + 1]
    pos = start + 2 + length
    if pos > end:
        raise MalformedPacket("packet shorter than its contents")
    topic = _text(data[start + 2:pos])
    packet_id = 0
    if qos:
        if pos + 2 > end:
            raise MalformedPacket("packet shorter than its contents")
        packet_id = (data[pos] << 8) | data[pos + 1]
        if not packet_id:
            raise MalformedPacket("packet identifier 0")
        pos += 2
    properties: p.Properties
    if version == p.MQTT_5:
        reader = _Reader(data, pos, end)
        properties = reader.properties()
        pos = reader.pos
    else:
        properties = {}
    return p.Publish(topic, data[pos:end], qos, bool(first & 0x01), bool(first & 0x08),
                     packet_id, properties)


def _publish(first: int, r: _Reader, version: int) -> p.Publish:
    return decode_publish(first, r.data, r.pos, r.end, version)


def _response(kind: type[p.PublishResponse], flags: int) -> Callable[..., p.PublishResponse]:
    def decode(first: int, r: _Reader, version: int) -> p.PublishResponse:
        _expect_flags(first, flags)
        packet_id = r.u16()
        code = 0
        properties: p.Properties = {}
        if version == p.MQTT_5 and r.left():
            code = r.u8()
            if r.left():
                properties = r.properties()
        r.done()
        return kind(packet_id, code, properties)
    return decode


def _packet_id(r: _Reader) -> int:
    packet_id = r.u16()
    if not packet_id:
        raise MalformedPacket("packet identifier 0")
    return packet_id


def _subscribe(first: int, r: _Reader, version: int) -> p.Subscribe:
    _expect_flags(first, 0x02)
    packet_id = _packet_id(r)
    properties = r.properties() if version == p.MQTT_5 else {}
    subscriptions = []
    while r.left():
        topic_filter = r.utf8()
        options = r.u8()
        if (options & 0xC0) or (version != p.MQTT_5 and options & 0xFC):
            raise MalformedPacket("reserved subscription option bits set")
        if options & 0x03 == 3 or (options >> 4) & 0x03 == 3:
            raise MalformedPacket("subscription QoS or retain handling 3")
        subscriptions.append(p.Subscription(topic_filter, options & 0x03,
                                            bool(options & 0x04), bool(options & 0x08),
                                            (options >> 4) & 0x03))
    if not subscriptions:
        raise MalformedPacket("SUBSCRIBE without a topic filter", p.PROTOCOL_ERROR)
    return p.Subscribe(packet_id, subscriptions, properties)


def _codes(r: _Reader) -> list[int]:
    return list(r.take(r.left()))


def _suback(first: int, r: _Reader, version: int) -> p.Suback:
    _expect_flags(first, 0)
    packet_id = r.u16()
    properties = r.properties() if version == p.MQTT_5 else {}
    return p.Suback(packet_id, _codes(r), properties)


def _unsubscribe(first: int, r: _Reader, version: int) -> p.Unsubscribe:
    _expect_flags(first, 0x02)
    packet_id = _packet_id(r)
    properties = r.properties() if version == p.MQTT_5 else {}
    filters = []
    while r.left():
        filters.append(r.utf8())
    if not filters:
        raise MalformedPacket("UNSUBSCRIBE without a topic filter", p.PROTOCOL_ERROR)
    return p.Unsubscribe(packet_id, filters, properties)


def _unsuback(first: int, r: _Reader, version: int) -> p.Unsuback:
    _expect_flags(first, 0)
    packet_id = r.u16()
    if version != p.MQTT_5:
        r.done()
        return p.Unsuback(packet_id)
    properties = r.properties()
    return p.Unsuback(packet_id, _codes(r), properties)


def _empty(kind: type[p.Pingreq | p.Pingresp]) -> Callable[..., p.Pingreq | p.Pingresp]:
    def decode(first: int, r: _Reader, version: int) -> p.Pingreq | p.Pingresp:
        _expect_flags(first, 0)
        r.done()
        return kind()
    return decode


def _reasoned(kind: type[p.Disconnect | p.Auth]) -> Callable[..., p.Disconnect | p.Auth]:
    def decode(first: int, r: _Reader, version: int) -> p.Disconnect | p.Auth:
        _expect_flags(first, 0)
        if version != p.MQTT_5:
            if kind is p.Auth:
                raise MalformedPacket("AUTH before MQTT 5", p.PROTOCOL_ERROR)
            r.done()
            return kind()
        code = r.u8() if r.left() else 0
        properties = r.properties() if r.left() else {}
        r.done()
        return kind(code, properties)
    return decode


_DECODERS: dict[int, Callable[[int, _Reader, int], p.Packet]] = {
    p.CONNECT: _connect,
    p.CONNACK: _connack,
    p.PUBLISH: _publish,
    p.PUBACK: _response(p.Puback, 0),
    p.PUBREC: _response(p.Pubrec, 0),
    p.PUBREL: _response(p.Pubrel, 0x02),
    p.PUBCOMP: _response(p.Pubcomp, 0),
    p.SUBSCRIBE: _subscribe,
    p.SUBACK: _suback,
    p.UNSUBSCRIBE: _unsubscribe,
    p.UNSUBACK: _unsuback,
    p.PINGREQ: _empty(p.Pingreq),
    p.PINGRESP: _empty(p.Pingresp),
    p.DISCONNECT: _reasoned(p.Disconnect),
    p.AUTH: _reasoned(p.Auth),
}


def decode(first: int, data: bytes, start: int, end: int, version: int) -> p.Packet:
    """The packet whose fixed header's first byte is `first` and whose body is
    `data[start:end]`; `version` is the connection's protocol level."""
    decoder = _DECODERS.get(first >> 4)
    if decoder is None:
        raise MalformedPacket("packet type 0 is reserved")
    return decoder(first, _Reader(data, start, end), version)


def decode_packet(data: bytes, version: int) -> p.Packet:
    """One whole packet (fixed header included), e.g. for tests."""
    found = split(data, 0, len(data))
    if found is None or found[2] != len(data):
        raise MalformedPacket("not exactly one packet")
    return decode(found[0], data, found[1], found[2], version)


# --------------------------------------------------------------------------- encoding


def _str(value: str) -> bytes:
    data = value.encode("utf-8")
    return _U16.pack(len(data)) + data


def _bin(value: bytes) -> bytes:
    return _U16.pack(len(value)) + value


def _property(ident: int, kind: int, value: Any) -> bytes:
    head = encode_varint(ident)
    if kind == p.BYTE:
        return head + bytes((value,))
    if kind == p.UINT16:
        return head + _U16.pack(value)
    if kind == p.UINT32:
        return head + _U32.pack(value)
    if kind == p.VARINT:
        return head + encode_varint(value)
    if kind == p.UTF8:
        return head + _str(value)
    if kind == p.BINARY:
        return head + _bin(value)
    return head + _str(value[0]) + _str(value[1])


def encode_properties(properties: p.Properties) -> bytes:
    """The property length and the properties, in the dict's order."""
    parts: list[bytes] = []
    for name, value in properties.items():
        ident, kind = p.PROPERTY_IDS[name]
        if name in p.REPEATABLE:
            parts.extend(_property(ident, kind, item) for item in value)
        else:
            parts.append(_property(ident, kind, value))
    data = b"".join(parts)
    return encode_varint(len(data)) + data


EMPTY_PROPERTIES = b"\x00"


def encode_publish(topic: bytes, payload: bytes, qos: int, retain: bool, dup: bool,
                   packet_id: int, properties: bytes | None) -> bytes:
    """A PUBLISH from an encoded topic and (MQTT 5 only, else None) encoded properties."""
    first = 0x30 | (qos << 1) | retain | (dup << 3)
    variable = _U16.pack(len(topic)) + topic
    if qos:
        variable += _U16.pack(packet_id)
    if properties is not None:
        variable += properties
    length = len(variable) + len(payload)
    if length < 128:
        return bytes((first, length)) + variable + payload
    return bytes((first,)) + encode_varint(length) + variable + payload


def _encode_connect(packet: p.Connect, version: int) -> bytes:
    level = packet.protocol_level
    v5 = level == p.MQTT_5
    will = packet.will
    flags = (0x02 if packet.clean_start else 0) | (0x80 if packet.username is not None else 0)
    flags |= 0x40 if packet.password is not None else 0
    if will is not None:
        flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
    body = [_str(p.PROTOCOL_NAMES[level]), bytes((level, flags)), _U16.pack(packet.keepalive)]
    if v5:
        body.append(encode_properties(packet.properties))
    body.append(_str(packet.client_id))
    if will is not None:
        if v5:
            body.append(encode_properties(will.properties))
        body += [_str(will.topic), _bin(will.payload)]
    if packet.username is not None:
        body.append(_str(packet.username))
    if packet.password is not None:
        body.append(_bin(packet.password))
    return _fixed(0x10, b"".join(body))


def _encode_response(first: int, packet: p.PublishResponse, version: int) -> bytes:
    body = _U16.pack(packet.packet_id)
    if version == p.MQTT_5 and (packet.reason_code or packet.properties):
        body += bytes((packet.reason_code,))
        if packet.properties:
            body += encode_properties(packet.properties)
    return _fixed(first, body)


def _v5_props(packet: Any, version: int) -> bytes:
    return encode_properties(packet.properties) if version == p.MQTT_5 else b""


def encode(packet: p.Packet, version: int) -> bytes:
    """The bytes of `packet` on a connection of protocol level `version`."""
    kind = type(packet)
    if kind is p.Publish:
        assert isinstance(packet, p.Publish)
        props = encode_properties(packet.properties) if version == p.MQTT_5 else None
        return encode_publish(packet.topic.encode("utf-8"), packet.payload, packet.qos,
                              packet.retain, packet.dup, packet.packet_id, props)
    if isinstance(packet, p.Connect):
        return _encode_connect(packet, version)
    if isinstance(packet, p.Connack):
        return _fixed(0x20, bytes((int(packet.session_present), packet.reason_code))
                      + _v5_props(packet, version))
    if isinstance(packet, p.Puback):
        return _encode_response(0x40, packet, version)
    if isinstance(packet, p.Pubrec):
        return _encode_response(0x50, packet, version)
    if isinstance(packet, p.Pubrel):
        return _encode_response(0x62, packet, version)
    if isinstance(packet, p.Pubcomp):
        return _encode_response(0x70, packet, version)
    if isinstance(packet, p.Subscribe):
        topics = b"".join(
            _str(s.topic_filter) + bytes((s.qos | (s.no_local << 2)
                                          | (s.retain_as_published << 3)
                                          | (s.retain_handling << 4),))
            for s in packet.subscriptions)
        return _fixed(0x82, _U16.pack(packet.packet_id) + _v5_props(packet, version) + topics)
    if isinstance(packet, p.Suback):
        return _fixed(0x90, _U16.pack(packet.packet_id) + _v5_props(packet, version)
                      + bytes(packet.reason_codes))
    if isinstance(packet, p.Unsubscribe):
        return _fixed(0xA2, _U16.pack(packet.packet_id) + _v5_props(packet, version)
                      + b"".join(map(_str, packet.topic_filters)))
    if isinstance(packet, p.Unsuback):
        tail = _v5_props(packet, version) + bytes(packet.reason_codes) if version == p.MQTT_5 \
            else b""
        return _fixed(0xB0, _U16.pack(packet.packet_id) + tail)
    if isinstance(packet, p.Pingreq):
        return b"\xc0\x00"
    if isinstance(packet, p.Pingresp):
        return b"\xd0\x00"
    if isinstance(packet, p.Disconnect | p.Auth):
        first = 0xE0 if isinstance(packet, p.Disconnect) else 0xF0
        if version != p.MQTT_5:
            return bytes((first, 0))
        if not packet.reason_code and not packet.properties:
            return bytes((first, 0))
        return _fixed(first, bytes((packet.reason_code,)) + encode_properties(packet.properties))
    raise TypeError(f"not an MQTT packet: {packet!r}")
