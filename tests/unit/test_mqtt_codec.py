"""The MQTT codec: every packet type survives encode -> decode (hypothesis), for each
protocol level, and malformed bytes raise MalformedPacket with the right reason code."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amqpbroker.protocol.mqtt import codec
from amqpbroker.protocol.mqtt import packets as p

ROUND_TRIP = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                      suppress_health_check=[HealthCheck.too_slow])

text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
               max_size=20)
binary = st.binary(max_size=40)
packet_id = st.integers(1, 65535)
u16 = st.integers(0, 65535)
u32 = st.integers(0, 2**32 - 1)
versions = st.sampled_from([p.MQTT_31, p.MQTT_311, p.MQTT_5])

_VALUES: dict[int, st.SearchStrategy[Any]] = {
    p.BYTE: st.integers(0, 255), p.UINT16: u16, p.UINT32: u32,
    p.VARINT: st.integers(1, 268_435_455), p.UTF8: text, p.BINARY: binary,
    p.PAIR: st.tuples(text, text),
}


@st.composite
def properties(draw: st.DrawFn) -> p.Properties:
    found: p.Properties = {}
    for name in draw(st.lists(st.sampled_from(sorted(p.PROPERTY_IDS)), max_size=5,
                              unique=True)):
        values = _VALUES[p.PROPERTY_IDS[name][1]]
        found[name] = (draw(st.lists(values, min_size=1, max_size=3))
                       if name in p.REPEATABLE else draw(values))
    return found


def props_for(version: int) -> st.SearchStrategy[p.Properties]:
    return properties() if version == p.MQTT_5 else st.just({})


def round_trip(packet: p.Packet, version: int) -> None:
    assert codec.decode_packet(codec.encode(packet, version), version) == packet


@st.composite
def connects(draw: st.DrawFn) -> p.Connect:
    level = draw(versions)
    will = None
    if draw(st.booleans()):
        will = p.Will(draw(text), draw(binary), draw(st.integers(0, 2)), draw(st.booleans()),
                      draw(props_for(level)))
    username = draw(st.none() | text)
    password = draw(st.none() | binary) if username is not None or level == p.MQTT_5 \
        else None
    return p.Connect(level, draw(text), draw(st.booleans()), draw(u16), will, username,
                     password, draw(props_for(level)))


@ROUND_TRIP
@given(connects())
def test_connect(packet: p.Connect) -> None:
    round_trip(packet, packet.protocol_level)


@ROUND_TRIP
@given(versions.flatmap(lambda v: st.tuples(st.just(v), st.builds(
    p.Connack, st.booleans(), st.integers(0, 255), props_for(v)))))
def test_connack(case: tuple[int, p.Connack]) -> None:
    round_trip(case[1], case[0])


@st.composite
def publishes(draw: st.DrawFn) -> tuple[int, p.Publish]:
    version = draw(versions)
    qos = draw(st.integers(0, 2))
    return version, p.Publish(draw(text), draw(st.binary(max_size=300)), qos,
                              draw(st.booleans()), draw(st.booleans()),
                              draw(packet_id) if qos else 0, draw(props_for(version)))


@ROUND_TRIP
@given(publishes())
def test_publish(case: tuple[int, p.Publish]) -> None:
    round_trip(case[1], case[0])


@ROUND_TRIP
@given(versions, st.sampled_from([p.Puback, p.Pubrec, p.Pubrel, p.Pubcomp]), st.data())
def test_publish_responses(version: int, kind: type[p.PublishResponse],
                           data: st.DataObject) -> None:
    if version == p.MQTT_5:
        packet = kind(data.draw(packet_id), data.draw(st.integers(0, 255)),
                      data.draw(properties()))
    else:
        packet = kind(data.draw(packet_id))
    round_trip(packet, version)


@ROUND_TRIP
@given(versions, st.data())
def test_subscribe(version: int, data: st.DataObject) -> None:
    v5 = version == p.MQTT_5
    subscription = st.builds(
        p.Subscription, text, st.integers(0, 2), st.booleans() if v5 else st.just(False),
        st.booleans() if v5 else st.just(False), st.integers(0, 2) if v5 else st.just(0))
    round_trip(p.Subscribe(data.draw(packet_id),
                           data.draw(st.lists(subscription, min_size=1, max_size=4)),
                           data.draw(props_for(version))), version)


@ROUND_TRIP
@given(versions, st.data())
def test_suback_unsubscribe_unsuback(version: int, data: st.DataObject) -> None:
    codes = st.lists(st.integers(0, 255), max_size=5)
    round_trip(p.Suback(data.draw(packet_id), data.draw(codes),
                        data.draw(props_for(version))), version)
    round_trip(p.Unsubscribe(data.draw(packet_id), data.draw(st.lists(text, min_size=1,
                                                                      max_size=4)),
                             data.draw(props_for(version))), version)
    if version == p.MQTT_5:
        round_trip(p.Unsuback(data.draw(packet_id), data.draw(codes),
                              data.draw(properties())), version)
    else:
        round_trip(p.Unsuback(data.draw(packet_id)), version)


@ROUND_TRIP
@given(versions, st.data())
def test_ping_disconnect_auth(version: int, data: st.DataObject) -> None:
    round_trip(p.Pingreq(), version)
    round_trip(p.Pingresp(), version)
    if version == p.MQTT_5:
        round_trip(p.Disconnect(data.draw(st.integers(0, 255)), data.draw(properties())),
                   version)
        round_trip(p.Auth(data.draw(st.integers(0, 255)), data.draw(properties())), version)
    else:
        round_trip(p.Disconnect(), version)


@ROUND_TRIP
@given(st.integers(0, 268_435_455))
def test_varint(value: int) -> None:
    header = b"\x30" + codec.encode_varint(value)
    assert codec.split(header, 0, 2**30) == (None if value else (0x30, len(header),
                                                                 len(header)))


@pytest.mark.parametrize(("data", "code"), [
    (b"\x30\xff\xff\xff\xff\x01", p.MALFORMED_PACKET),  # remaining length of five bytes
    (b"\x30\x05\x00\x09abc", p.MALFORMED_PACKET),  # topic longer than the packet
    (b"\x30\x05\x00\x03\xff\xfe\x00", p.MALFORMED_PACKET),  # not UTF-8
    (b"\x30\x04\x00\x02a\x00", p.MALFORMED_PACKET),  # U+0000
    (b"\x36\x03\x00\x01a", p.MALFORMED_PACKET),  # QoS 3
    (b"\x32\x05\x00\x01a\x00\x00", p.MALFORMED_PACKET),  # packet id 0
    (b"\x82\x02\x00\x01", p.PROTOCOL_ERROR),  # SUBSCRIBE without filters
    (b"\x80\x06\x00\x01\x00\x01a\x00", p.MALFORMED_PACKET),  # SUBSCRIBE flags not 0010
    (b"\xc0\x01\x00", p.MALFORMED_PACKET),  # PINGREQ with a body
    (b"\x00\x00", p.MALFORMED_PACKET),  # type 0
    (b"\x10\x0c\x00\x04MQTT\x07\x02\x00\x3c\x00\x00", p.UNSUPPORTED_PROTOCOL_VERSION),
    (b"\x10\x0c\x00\x04MQTT\x04\x03\x00\x3c\x00\x00", p.MALFORMED_PACKET),  # reserved bit
])
def test_malformed(data: bytes, code: int) -> None:
    with pytest.raises(codec.MalformedPacket) as caught:
        codec.decode_packet(data, p.MQTT_311)
    assert caught.value.code == code


def test_v5_property_rules() -> None:
    twice = b"\x04\x01\x05\x01\x07"  # payload format twice
    data = b"\x30" + bytes((3 + len(twice),)) + b"\x00\x01a" + twice
    with pytest.raises(codec.MalformedPacket) as caught:
        codec.decode_packet(data, p.MQTT_5)
    assert caught.value.code == p.PROTOCOL_ERROR
    unknown = b"\x02\x7f\x00"
    with pytest.raises(codec.MalformedPacket):
        codec.decode_packet(b"\x30" + bytes((3 + len(unknown),)) + b"\x00\x01a" + unknown,
                            p.MQTT_5)


def test_too_large_and_incomplete() -> None:
    assert codec.split(b"\x30\x80", 0, 100) is None
    with pytest.raises(codec.MalformedPacket) as caught:
        codec.split(b"\x30\x80\x01", 0, 100)
    assert caught.value.code == p.PACKET_TOO_LARGE
