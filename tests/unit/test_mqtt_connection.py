"""The MQTT connection state machine: CONNECT first, accept/refuse, packets in wire
order, topic aliases, protocol failures and keepalive expiry."""

from __future__ import annotations

from amqpbroker.protocol.mqtt import codec
from amqpbroker.protocol.mqtt import packets as p
from amqpbroker.protocol.mqtt.commands import Expired, Failed
from amqpbroker.protocol.mqtt.connection import Connection


def connection(now: float = 0.0) -> Connection:
    return Connection(max_packet_size=1024, connect_timeout=10.0, now=now)


def opened(version: int = p.MQTT_311, keepalive: int = 0) -> Connection:
    conn = connection()
    data = codec.encode(p.Connect(version, "c", keepalive=keepalive), version)
    [connect] = conn.receive_data(data, 0.0)
    assert isinstance(connect, p.Connect)
    assert conn.accept(False, keepalive=keepalive) == codec.encode(p.Connack(), version)
    return conn


def test_packets_in_order_after_connect() -> None:
    conn = connection()
    data = codec.encode(p.Connect(p.MQTT_311, "c"), p.MQTT_311) + codec.encode(
        p.Publish("a/b", b"x", 1, packet_id=7), p.MQTT_311) + b"\xc0\x00"
    received = conn.receive_data(data[:5], 0.0)
    assert list(received) == []
    commands = conn.receive_data(data[5:], 0.0)
    connect = next(commands)
    assert isinstance(connect, p.Connect) and connect.client_id == "c"
    conn.accept(False, keepalive=0)
    assert list(commands) == [p.Publish("a/b", b"x", 1, packet_id=7), p.Pingreq()]


def test_packet_before_connect_closes() -> None:
    conn = connection()
    [failed] = conn.receive_data(b"\xc0\x00", 0.0)
    assert isinstance(failed, Failed) and failed.data == b"" and conn.closed


def test_refuse_gives_the_version_form() -> None:
    conn = connection()
    list(conn.receive_data(codec.encode(p.Connect(p.MQTT_311, "c"), p.MQTT_311), 0.0))
    assert conn.refuse(p.V3_BAD_CREDENTIALS, p.BAD_USER_NAME_OR_PASSWORD) == b"\x20\x02\x00\x04"
    assert conn.closed
    conn = connection()
    list(conn.receive_data(codec.encode(p.Connect(p.MQTT_5, "c"), p.MQTT_5), 0.0))
    assert codec.decode_packet(conn.refuse(4, p.NOT_AUTHORIZED), p.MQTT_5) == p.Connack(
        False, p.NOT_AUTHORIZED)


def test_unsupported_level_gets_connack_1() -> None:
    conn = connection()
    [failed] = conn.receive_data(b"\x10\x0c\x00\x04MQTT\x09\x02\x00\x3c\x00\x00", 0.0)
    assert isinstance(failed, Failed) and failed.data == b"\x20\x02\x00\x01"


def test_wildcard_publish_fails_with_disconnect_in_v5() -> None:
    conn = opened(p.MQTT_5)
    [failed] = conn.receive_data(codec.encode(p.Publish("a/+", b""), p.MQTT_5), 1.0)
    assert isinstance(failed, Failed) and failed.code == p.TOPIC_NAME_INVALID
    assert codec.decode_packet(failed.data, p.MQTT_5) == p.Disconnect(p.TOPIC_NAME_INVALID)
    assert conn.closed


def test_malformed_packet_after_connect() -> None:
    conn = opened()
    [failed] = conn.receive_data(b"\x30\x05\x00\x09abc", 1.0)
    assert isinstance(failed, Failed) and failed.code == p.MALFORMED_PACKET
    assert failed.data == b"" and conn.closed


def test_topic_aliases_resolve() -> None:
    conn = opened(p.MQTT_5)
    first = p.Publish("a/b", b"1", properties={"topic_alias": 3})
    again = p.Publish("", b"2", properties={"topic_alias": 3})
    got = list(conn.receive_data(codec.encode(first, p.MQTT_5)
                                 + codec.encode(again, p.MQTT_5), 1.0))
    assert [packet.topic for packet in got] == ["a/b", "a/b"]  # type: ignore[union-attr]
    [failed] = conn.receive_data(codec.encode(
        p.Publish("", b"", properties={"topic_alias": 4}), p.MQTT_5), 1.0)
    assert isinstance(failed, Failed) and failed.code == p.PROTOCOL_ERROR


def test_second_connect_is_a_protocol_error() -> None:
    conn = opened()
    [failed] = conn.receive_data(codec.encode(p.Connect(p.MQTT_311, "c"), p.MQTT_311), 1.0)
    assert isinstance(failed, Failed) and conn.closed


def test_too_large_packet() -> None:
    conn = opened(p.MQTT_5)
    [failed] = conn.receive_data(codec.encode(p.Publish("t", b"x" * 2000), p.MQTT_5), 1.0)
    assert isinstance(failed, Failed) and failed.code == p.PACKET_TOO_LARGE


def test_keepalive_and_connect_deadlines() -> None:
    conn = connection()
    assert conn.next_deadline() == 10.0
    assert isinstance(conn.tick(10.0), Expired) and conn.closed
    conn = opened(keepalive=10)
    list(conn.receive_data(b"\xc0\x00", 4.0))
    assert conn.next_deadline() == 19.0
    assert conn.tick(18.9) is None
    assert isinstance(conn.tick(19.0), Expired)


def test_disconnect_closes() -> None:
    conn = opened()
    assert list(conn.receive_data(b"\xe0\x00", 1.0)) == [p.Disconnect()]
    assert conn.closed


def test_outbound_aliases() -> None:
    conn = opened(p.MQTT_5)
    conn.client_alias_max = 1
    assert conn.outbound_alias("a") == (1, True)
    assert conn.outbound_alias("a") == (1, False)
    assert conn.outbound_alias("b") == (0, False)
