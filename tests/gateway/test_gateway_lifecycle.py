"""Across protocols, over a message's life: retained messages (MQTT only), wills, a
persistent MQTT session across a restart, STOMP transactions and receipts seen by MQTT,
TTL and dead-lettering of MQTT messages on AMQP queues, resource alarms holding MQTT and
STOMP publishers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pika
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from support.mqtt_clients import TIMEOUT, V5, Client
from support.processes import free_port
from support.stomp_clients import StompConnector, connect

from amqpbroker.testing import EmbeddedBroker, broker_in_thread, wait_for

pytestmark = pytest.mark.timeout(60)
Open = Callable[..., Client]
Channel = pika.adapters.blocking_connection.BlockingChannel


def _get(amqp: Channel, queue: str) -> tuple:
    def got() -> tuple | None:
        method, props, body = amqp.basic_get(queue, auto_ack=True)
        return (method, props, body) if method is not None else None

    return wait_for(got, TIMEOUT, f"a message on {queue}")


def _subscribed(stomp_connect: StompConnector, destination: str) -> tuple:
    connection, collector = stomp_connect()
    connection.subscribe(destination, id="s1", ack="auto", receipt="sub")
    collector.wait_receipt("sub")
    return connection, collector


def test_amqp_publish_is_not_retained(mqtt_client: Open, amqp: Channel) -> None:
    amqp.basic_publish("amq.topic", "rt.a", b"from amqp")
    sub = mqtt_client("sub")
    sub.connected()
    sub.subscribe("rt/a", 1)
    sub.no_message()


def test_mqtt_retained_reaches_stomp_live_only(mqtt_client: Open,
                                               stomp_connect: StompConnector) -> None:
    _early, live = _subscribed(stomp_connect, "/topic/rt.b")
    pub = mqtt_client("pub")
    pub.connected()
    pub.publish("rt/b", b"kept", 1, retain=True)
    assert live.wait_messages(1)[0].body == "kept"
    _late, late = _subscribed(stomp_connect, "/topic/rt.b")  # retained is MQTT's own
    sub = mqtt_client("sub")
    sub.connected()
    sub.subscribe("rt/b", 1)
    message = sub.message()
    assert (message.payload, message.retain) == (b"kept", True)
    assert late.messages == []


def test_will_reaches_amqp_and_stomp(mqtt_client: Open, amqp: Channel,
                                     stomp_connect: StompConnector) -> None:
    queue = amqp.queue_declare("", exclusive=True).method.queue
    amqp.queue_bind(queue, "amq.topic", "will.#")
    _connection, collector = _subscribed(stomp_connect, "/topic/will.*")
    client = mqtt_client("dies", will=("will/dies", b"gone", 1, False))
    client.connected()
    client.drop()
    method, props, body = _get(amqp, queue)
    assert (method.routing_key, body, props.delivery_mode) == ("will.dies", b"gone", 2)
    frame = collector.wait_messages(1)[0]
    assert (frame.body, frame.headers["destination"]) == ("gone", "/topic/will.dies")


def test_persistent_mqtt_session_across_a_restart(tmp_path: Path) -> None:
    with broker_in_thread(mqtt_port=free_port(), stomp_port=free_port(),
                          data_dir=str(tmp_path)) as broker:
        sub = Client(broker.server.frontend_ports["mqtt"], "keeper", clean=False)
        sub.connected()
        sub.subscribe("ps/#", 1)
        sub.close()
        connection, collector = connect(broker.server.frontend_ports["stomp"])
        connection.send("/topic/ps.stomp", "from stomp", headers={"persistent": "true"},
                        receipt="sent")
        collector.wait_receipt("sent")
        connection.disconnect()
        amqp = pika.BlockingConnection(pika.URLParameters(broker.url))
        channel = amqp.channel()
        channel.confirm_delivery()
        channel.basic_publish("amq.topic", "ps.amqp", b"from amqp",
                              pika.BasicProperties(delivery_mode=2))
        amqp.close()
        broker.restart()
        again = Client(broker.server.frontend_ports["mqtt"], "keeper", clean=False)
        try:
            assert again.connected()[0] is True
            got = sorted((m.topic, m.payload, m.qos) for m in (again.message(),
                                                                again.message()))
            assert got == [("ps/amqp", b"from amqp", 1), ("ps/stomp", b"from stomp", 1)]
        finally:
            again.close()


def test_stomp_transaction_and_receipts_with_an_mqtt_subscriber(
        mqtt_client: Open, stomp_connect: StompConnector) -> None:
    sub = mqtt_client("sub")
    sub.connected()
    sub.subscribe("tx/#", 1)
    connection, collector = stomp_connect()
    transaction = connection.begin()
    connection.send("/topic/tx.a", "one", transaction=transaction)
    connection.send("/topic/tx.a", "two", transaction=transaction, receipt="held")
    collector.wait_receipt("held")
    sub.no_message()
    connection.commit(transaction, receipt="committed")
    collector.wait_receipt("committed")
    assert [sub.message().payload, sub.message().payload] == [b"one", b"two"]
    aborted = connection.begin()
    connection.send("/topic/tx.a", "never", transaction=aborted)
    connection.abort(aborted, receipt="aborted")
    collector.wait_receipt("aborted")
    connection.send("/topic/tx.a", "after", receipt="sent")
    collector.wait_receipt("sent")
    assert sub.message().payload == b"after"


def test_mqtt_message_expires_and_is_dead_lettered(gateway: EmbeddedBroker, mqtt_client: Open,
                                                   amqp: Channel,
                                                   stomp_connect: StompConnector) -> None:
    amqp.exchange_declare("dlx", "fanout")
    amqp.queue_declare("dead")
    amqp.queue_bind("dead", "dlx")
    amqp.queue_declare("short", arguments={"x-message-ttl": 60000,
                                           "x-dead-letter-exchange": "dlx"})
    amqp.queue_bind("short", "amq.topic", "ttl.#")
    pub = mqtt_client("pub", version=V5)
    pub.connected()
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = ("k", "v")
    expiring = Properties(PacketTypes.PUBLISH)
    expiring.MessageExpiryInterval = 5  # -> expiration 5000 (first: expiry is at the head)
    pub.publish("ttl/b", b"message expiry", 1, properties=expiring)
    pub.publish("ttl/a", b"queue ttl", 1, properties=props)
    gateway.wait_for_queue_depth("short", 2)
    gateway.clock.advance(6)  # the message expiry (5 s) passed, not the queue's 60 s
    gateway.wait_for_queue_depth("dead", 1)
    gateway.clock.advance(55)
    gateway.wait_for_queue_depth("dead", 2)
    assert gateway.queue("short").depth == 0
    dead = gateway.dead_lettered("expired")
    assert sorted(m.body for m in dead) == [b"message expiry", b"queue ttl"]
    assert all(m.headers["x-mqtt-publish-qos"] == 1 and m.routing_key.startswith("ttl.")
               for m in dead)
    _connection, collector = _subscribed(stomp_connect, "/amq/queue/dead")
    frames = collector.wait_messages(2)
    assert [f.body for f in frames] == ["message expiry", "queue ttl"]
    assert frames[1].headers["k"] == "v"
    assert "expiration" not in frames[1].headers


def test_alarm_holds_mqtt_and_stomp_publishers(gateway: EmbeddedBroker, mqtt_client: Open,
                                               stomp_connect: StompConnector) -> None:
    sub = mqtt_client("sub")
    sub.connected()
    sub.subscribe("alarm/#", 1)
    pub = mqtt_client("pub")
    pub.connected()
    connection, collector = stomp_connect()
    gateway.block_publishers()
    try:
        info = pub.paho.publish("alarm/mqtt", b"held mqtt", 1)
        connection.send("/topic/alarm.stomp", "held stomp", receipt="sent")
        sub.no_message(0.5)
        assert "sent" not in collector.receipts
    finally:
        gateway.unblock_publishers()
    info.wait_for_publish(TIMEOUT)
    collector.wait_receipt("sent")
    assert sorted([sub.message().payload, sub.message().payload]) == [b"held mqtt",
                                                                      b"held stomp"]
