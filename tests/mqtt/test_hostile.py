"""What no MQTT client should send: each closes only its own connection, never with a
traceback, and the broker goes on serving everyone else."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from support.mqtt_clients import V5, Client, RawMqtt

from amqpbroker.protocol.mqtt import packets as p

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def bystander(mqtt_client: Callable[..., Client]) -> Iterator[Client]:
    """A healthy client that must not notice anything."""
    client = mqtt_client("bystander")
    client.connected()
    client.subscribe("health/#", 1)
    yield client
    client.publish("health/check", b"ok", 1)
    assert client.message().payload == b"ok"


def test_packet_before_connect(raw: Callable[..., RawMqtt], bystander: Client,
                               caplog: pytest.LogCaptureFixture) -> None:
    conn = raw()
    conn.send(b"\xc0\x00")
    assert conn.closed()
    assert "Traceback" not in caplog.text


@pytest.mark.parametrize("data", [
    b"\x30\xff\xff\xff\xff\x01",  # remaining length longer than four bytes
    b"\x30\x05\x00\x09abc",  # topic longer than the packet (a remaining-length lie)
    b"\x30\x05\x00\x03\xff\xfe\xfd",  # topic not UTF-8
    b"\x30\x05\x00\x03a/+",  # wildcard in a PUBLISH topic
    b"\x36\x03\x00\x01a",  # QoS 3
    b"\x82\x02\x00\x01",  # SUBSCRIBE without a filter
    b"\x00\x00",  # reserved packet type
    b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00",  # a second CONNECT
], ids=["length", "lie", "utf8", "wildcard", "qos3", "nofilter", "type0", "connect2"])
def test_malformed_closes_only_that_connection(raw: Callable[..., RawMqtt], data: bytes,
                                               bystander: Client,
                                               caplog: pytest.LogCaptureFixture) -> None:
    conn = raw()
    assert conn.connect() == p.Connack()
    conn.send(data)
    assert conn.closed()
    assert "Traceback" not in caplog.text


def test_v5_wildcard_publish_gets_disconnect(raw: Callable[..., RawMqtt],
                                             bystander: Client) -> None:
    conn = raw(V5)
    assert isinstance(conn.connect(), p.Connack)
    conn.send_packet(p.Publish("a/#", b"x"))
    assert conn.packet() == p.Disconnect(p.TOPIC_NAME_INVALID)
    assert conn.closed()


def test_length_lie_waits_then_keepalive_closes(raw: Callable[..., RawMqtt],
                                                bystander: Client) -> None:
    conn = raw()
    assert conn.connect(keepalive=1) == p.Connack()
    conn.send(b"\x30\x7f\x00\x01a")  # promises 127 bytes, sends 3
    assert conn.closed()  # 1.5 s later


def test_v3_connack_codes(raw: Callable[..., RawMqtt], bystander: Client) -> None:
    assert raw().connect("", clean_start=False) == p.Connack(False, p.V3_IDENTIFIER_REJECTED)
    assert raw().connect("u", username="guest") == p.Connack(False, p.V3_BAD_CREDENTIALS)
    assert raw().connect("u", username="guest", password=b"\xff") == p.Connack(
        False, p.V3_BAD_CREDENTIALS)
    unsupported = raw()
    unsupported.send(b"\x10\x0c\x00\x04MQTT\x06\x02\x00\x3c\x00\x00")
    assert unsupported.packet() == p.Connack(False, p.V3_BAD_VERSION)


def test_giant_packet_is_refused(raw: Callable[..., RawMqtt], bystander: Client) -> None:
    conn = raw(V5)
    assert isinstance(conn.connect(), p.Connack)
    conn.send(b"\x30\xff\xff\xff\x7f")  # 256 MiB announced
    assert conn.packet() == p.Disconnect(p.PACKET_TOO_LARGE)
    assert conn.closed()


def test_unknown_packet_ids_are_harmless(raw: Callable[..., RawMqtt],
                                         bystander: Client) -> None:
    conn = raw()
    assert conn.connect() == p.Connack()
    conn.send_packet(p.Puback(99))
    conn.send_packet(p.Pubcomp(98))
    conn.send_packet(p.Pubrel(97))
    assert conn.packet() == p.Pubcomp(97)
    conn.send_packet(p.Pingreq())
    assert conn.packet() == p.Pingresp()
