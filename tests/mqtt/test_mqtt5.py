"""MQTT 5 features with paho-mqtt 5 and raw packets: topic aliases both ways,
subscription identifiers, no-local, retain handling, retain-as-published, the client's
maximum packet size, receive maximum as the consumer's credit, session expiry changed
at DISCONNECT."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from support.mqtt_clients import V5, V311, Client, RawMqtt

from amqpbroker.protocol.mqtt import packets as p
from amqpbroker.testing import EmbeddedBroker, wait_for

pytestmark = pytest.mark.timeout(60)
Open = Callable[..., Client]
Raw = Callable[..., RawMqtt]


def _props(packet_type: int, **values: object) -> Properties:
    props = Properties(packet_type)
    for name, value in values.items():
        setattr(props, name, value)
    return props


def _v5_client(mqtt_client: Open, client_id: str, **connect: object) -> Client:
    client = mqtt_client(client_id, version=V5,
                         properties=_props(PacketTypes.CONNECT, **connect) if connect else None)
    assert client.connected()[1] == 0
    return client


def _queue(client_id: str) -> str:
    return f"mqtt-subscription-{client_id}qos1"


def test_inbound_topic_alias(mqtt_client: Open, raw: Raw) -> None:
    sub = _v5_client(mqtt_client, "sub")
    sub.subscribe("alias/#", 1)
    conn = raw(V5)
    connack = conn.connect("aliaser")
    assert isinstance(connack, p.Connack) and connack.properties["topic_alias_maximum"] == 64
    conn.send_packet(p.Publish("alias/x", b"1", properties={"topic_alias": 3}))
    conn.send_packet(p.Publish("", b"2", properties={"topic_alias": 3}))
    conn.send_packet(p.Publish("alias/y", b"3", properties={"topic_alias": 3}))  # remapped
    conn.send_packet(p.Publish("", b"4", properties={"topic_alias": 3}))
    assert [(m.topic, m.payload) for m in (sub.message() for _ in range(4))] == [
        ("alias/x", b"1"), ("alias/x", b"2"), ("alias/y", b"3"), ("alias/y", b"4")]
    conn.send_packet(p.Publish("", b"5", properties={"topic_alias": 9}))  # never set up
    reply = conn.packet()
    assert isinstance(reply, p.Disconnect) and reply.reason_code == p.PROTOCOL_ERROR
    assert conn.closed()
    sub.no_message()


def test_outbound_topic_alias(mqtt_client: Open, raw: Raw) -> None:
    conn = raw(V5)
    conn.connect("aliased", properties={"topic_alias_maximum": 2})
    conn.send_packet(p.Subscribe(1, [p.Subscription("out/#", 0)]))
    assert isinstance(conn.packet(), p.Suback)
    pub = mqtt_client("pub")
    pub.connected()
    for topic in ("out/a", "out/a", "out/b", "out/c", "out/a", "out/c"):
        pub.publish(topic, topic.encode(), 1)
    got = [conn.packet() for _ in range(6)]
    assert [(m.topic, m.properties.get("topic_alias"), m.payload) for m in got
            if isinstance(m, p.Publish)] == [
        ("out/a", 1, b"out/a"), ("", 1, b"out/a"), ("out/b", 2, b"out/b"),
        ("out/c", None, b"out/c"), ("", 1, b"out/a"), ("out/c", None, b"out/c")]


def test_no_topic_alias_for_a_client_that_allows_none(mqtt_client: Open, raw: Raw) -> None:
    conn = raw(V5)
    conn.connect("plain")
    conn.send_packet(p.Subscribe(1, [p.Subscription("na/#", 0)]))
    conn.packet()
    pub = mqtt_client("pub")
    pub.connected()
    pub.publish("na/a", b"1", 1)
    pub.publish("na/a", b"2", 1)
    for _ in range(2):
        message = conn.packet()
        assert isinstance(message, p.Publish) and message.topic == "na/a"
        assert "topic_alias" not in message.properties


def test_subscription_identifiers(mqtt_broker: EmbeddedBroker, mqtt_client: Open) -> None:
    sub = _v5_client(mqtt_client, "ids")
    sub.subscribe("si/#", 1, properties=_props(PacketTypes.SUBSCRIBE,
                                                SubscriptionIdentifier=1))
    sub.subscribe("si/+", 1, properties=_props(PacketTypes.SUBSCRIBE,
                                                SubscriptionIdentifier=2))
    sub.subscribe("si/x", 0)  # no identifier
    pub = mqtt_client("pub")
    pub.connected()
    pub.publish("si/x", b"three copies", 1)
    copies = sorted((*getattr(m.properties, "SubscriptionIdentifier", []), m.qos)
                    for m in (sub.message() for _ in range(3)))
    assert copies == [(0,), (1, 1), (2, 1)]
    sub.no_message()
    pub.publish("si/x/deep", b"one copy", 1)
    message = sub.message()
    assert (message.payload, message.properties.SubscriptionIdentifier) == (b"one copy", [1])
    sub.no_message()
    # every copy acked: the one queued message is acked once, after both QoS 1 copies
    mqtt_broker.wait_until_acked(_queue("ids"))
    assert mqtt_broker.queue(_queue("ids")).depth == 0


def test_retained_message_carries_the_subscription_identifier(mqtt_client: Open) -> None:
    pub = mqtt_client("pub")
    pub.connected()
    pub.publish("sir/a", b"kept", 1, retain=True)
    sub = _v5_client(mqtt_client, "sub")
    sub.subscribe("sir/a", 1, properties=_props(PacketTypes.SUBSCRIBE,
                                                 SubscriptionIdentifier=7))
    message = sub.message()
    assert message.retain and message.properties.SubscriptionIdentifier == [7]


def test_no_local(mqtt_client: Open) -> None:
    me = _v5_client(mqtt_client, "me")
    me.subscribe("nl/#", 1, noLocal=True)
    other = _v5_client(mqtt_client, "other")
    other.subscribe("nl/#", 1)
    me.publish("nl/a", b"mine", 1)
    assert other.message().payload == b"mine"
    me.no_message()
    other.publish("nl/a", b"theirs", 1)
    assert me.message().payload == b"theirs"
    assert other.message().payload == b"theirs"


def test_retain_handling(mqtt_client: Open) -> None:
    pub = mqtt_client("pub")
    pub.connected()
    pub.publish("rh/a", b"kept", 1, retain=True)
    sub = _v5_client(mqtt_client, "sub")
    sub.subscribe("rh/a", 1, retainHandling=0)
    assert sub.message().retain
    sub.subscribe("rh/a", 1, retainHandling=0)  # again: sent again
    assert sub.message().payload == b"kept"
    sub.subscribe("rh/a", 1, retainHandling=1)  # not a new subscription: not sent
    sub.no_message()
    sub.subscribe("rh/+", 1, retainHandling=1)  # a new one: sent
    assert sub.message().payload == b"kept"
    sub.subscribe("rh/#", 1, retainHandling=2)  # never sent
    sub.no_message()


def test_retain_as_published(mqtt_client: Open) -> None:
    keeps = _v5_client(mqtt_client, "keeps")
    keeps.subscribe("rap/#", 1, retainAsPublished=True)
    clears = _v5_client(mqtt_client, "clears")
    clears.subscribe("rap/#", 0)
    v3 = mqtt_client("v3", version=V311)
    v3.connected()
    v3.subscribe("rap/#", 1)
    pub = mqtt_client("pub")
    pub.connected()
    pub.publish("rap/a", b"retained", 1, retain=True)
    pub.publish("rap/a", b"live", 1)
    assert [(m.payload, m.retain) for m in (keeps.message(), keeps.message())] == [
        (b"retained", True), (b"live", False)]
    for client in (clears, v3):
        assert [(m.payload, m.retain) for m in (client.message(), client.message())] == [
            (b"retained", False), (b"live", False)]


def test_maximum_packet_size(mqtt_broker: EmbeddedBroker, mqtt_client: Open) -> None:
    pub = mqtt_client("pub")
    pub.connected()
    pub.publish("mp/retained", b"r" * 500, 1, retain=True)
    sub = _v5_client(mqtt_client, "small", MaximumPacketSize=200)
    sub.subscribe("mp/#", 1)  # the retained message is too large: not sent
    pub.publish("mp/big", b"b" * 500, 1)
    pub.publish("mp/small", b"s", 1)
    message = sub.message()
    assert (message.topic, message.payload) == ("mp/small", b"s")
    sub.no_message()
    mqtt_broker.wait_until_acked(_queue("small"))  # the dropped one is not left unacked
    assert mqtt_broker.queue(_queue("small")).depth == 0


def test_receive_maximum_is_the_consumer_credit(mqtt_broker: EmbeddedBroker,
                                                mqtt_client: Open, raw: Raw) -> None:
    conn = raw(V5)
    conn.connect("slow", clean_start=True, properties={"receive_maximum": 2})
    conn.send_packet(p.Subscribe(1, [p.Subscription("rm/#", 1)]))
    conn.packet()
    pub = mqtt_client("pub")
    pub.connected()
    for n in range(5):
        pub.publish("rm/x", str(n).encode(), 1)
    first = [conn.packet(), conn.packet()]
    wait_for(lambda: mqtt_broker.queue(_queue("slow")).ready == 3, what="3 held back")
    conn.no_packet()
    assert mqtt_broker.queue(_queue("slow")).unacked == 2
    for message in first:
        assert isinstance(message, p.Publish)
        conn.send_packet(p.Puback(message.packet_id))
    rest = [conn.packet(), conn.packet()]
    assert [m.payload for m in first + rest if isinstance(m, p.Publish)] == [
        b"0", b"1", b"2", b"3"]


def test_session_expiry_shortened_at_disconnect(mqtt_broker: EmbeddedBroker,
                                                mqtt_client: Open) -> None:
    sub = _v5_client(mqtt_client, "short", SessionExpiryInterval=3600)
    sub.subscribe("se/#", 1)
    assert mqtt_broker.queue(_queue("short")).arguments["x-expires"] == 3_600_000
    sub.paho.disconnect(properties=_props(PacketTypes.DISCONNECT, SessionExpiryInterval=60))
    sub.disconnected.wait(10)
    wait_for(lambda: mqtt_broker.queue(_queue("short")).arguments["x-expires"] == 60_000,
             what="x-expires of 60 s")
    mqtt_broker.clock.advance(59)
    assert _queue("short") in [q.name for q in mqtt_broker.queues()]
    mqtt_broker.clock.advance(2)
    wait_for(lambda: _queue("short") not in [q.name for q in mqtt_broker.queues()],
             what="the session queue expired")
    again = mqtt_client("short", version=V5, clean=False)
    assert again.connected()[0] is False


def test_session_ended_at_disconnect(mqtt_broker: EmbeddedBroker, mqtt_client: Open) -> None:
    sub = _v5_client(mqtt_client, "ending", SessionExpiryInterval=3600)
    sub.subscribe("se/#", 1)
    sub.paho.disconnect(properties=_props(PacketTypes.DISCONNECT, SessionExpiryInterval=0))
    wait_for(lambda: _queue("ending") not in [q.name for q in mqtt_broker.queues()],
             what="the session queue gone")
    again = mqtt_client("ending", version=V5, clean=False)
    assert again.connected()[0] is False


def test_session_expiry_set_at_disconnect_after_zero(raw: Raw, mqtt_client: Open) -> None:
    watcher = mqtt_client("watcher")
    watcher.connected()
    watcher.subscribe("gone/#")
    conn = raw(V5)
    conn.connect("zero", will=p.Will("gone/zero", b"will"))
    conn.send_packet(p.Disconnect(properties={"session_expiry_interval": 30}))
    assert conn.closed()
    assert watcher.message().payload == b"will"  # a protocol error, not a normal disconnect


def test_a_dropped_packet_sets_up_no_topic_alias(mqtt_client: Open, raw: Raw) -> None:
    conn = raw(V5)
    conn.connect("tight", properties={"topic_alias_maximum": 2, "maximum_packet_size": 64})
    conn.send_packet(p.Subscribe(1, [p.Subscription("dr/#", 0)]))
    conn.packet()
    pub = mqtt_client("pub")
    pub.connected()
    pub.publish("dr/a", b"x" * 100, 1)  # too large: dropped
    pub.publish("dr/a", b"small", 1)
    message = conn.packet()
    assert isinstance(message, p.Publish)
    assert (message.topic, message.properties["topic_alias"], message.payload) == (
        "dr/a", 1, b"small")
