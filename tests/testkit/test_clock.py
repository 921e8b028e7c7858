"""The virtual clock: `broker.clock.advance` makes TTLs expire, delayed messages fire,
queues expire and consumer timeouts trip at once and in deadline order, while heartbeats
stay on the real clock."""

from __future__ import annotations

import time

import pika
import pytest

from amqpbroker.testing import EmbeddedBroker, wait_for

pytestmark = pytest.mark.timeout(30)
HOUR = 3600.0


@pytest.fixture
def channel(amqp_broker: EmbeddedBroker):
    connection = pika.BlockingConnection(pika.URLParameters(amqp_broker.url))
    yield connection.channel()
    connection.close()


def test_an_hour_of_ttl_in_milliseconds(amqp_broker: EmbeddedBroker, channel) -> None:
    channel.queue_declare("short", arguments={"x-message-ttl": int(HOUR * 1000)})
    channel.basic_publish("", "short", b"old")
    amqp_broker.wait_for_queue_depth("short", 1)
    started = time.monotonic()
    amqp_broker.clock.advance(HOUR - 1)
    assert amqp_broker.queue("short").ready == 1
    amqp_broker.clock.advance(1)
    assert amqp_broker.queue("short").ready == 0
    assert time.monotonic() - started < 5  # no waiting in real time (a loose bound)
    assert amqp_broker.clock.offset == HOUR


def test_expiry_dead_letters_in_deadline_order(amqp_broker: EmbeddedBroker, channel) -> None:
    channel.queue_declare("dead")
    channel.queue_declare("ttl", arguments={"x-dead-letter-exchange": "",
                                            "x-dead-letter-routing-key": "dead"})
    for seconds in (30, 10, 20):  # per-message TTLs out of order
        channel.basic_publish("", "ttl", f"{seconds}".encode(),
                              pika.BasicProperties(expiration=str(seconds * 1000)))
    amqp_broker.wait_for_queue_depth("ttl", 3)
    amqp_broker.clock.advance(60)
    assert [m.text for m in amqp_broker.messages("dead")] == ["30", "10", "20"]
    assert {m.x_death[0]["reason"] for m in amqp_broker.dead_lettered("expired")} == {"expired"}


def test_delayed_messages_fire_in_order(amqp_broker: EmbeddedBroker, channel) -> None:
    channel.confirm_delivery()  # each publish returns once the broker holds the message
    channel.exchange_declare("later", "x-delayed-message", arguments={"x-delayed-type": "direct"})
    channel.queue_declare("out")
    channel.queue_bind("out", "later", "k")
    for delay in (5000, 1000, 3000):
        channel.basic_publish("later", "k", str(delay).encode(),
                              pika.BasicProperties(headers={"x-delay": delay}))
    amqp_broker.clock.advance(2)
    assert [m.text for m in amqp_broker.messages("out")] == ["1000"]
    amqp_broker.clock.advance(10)
    assert [m.text for m in amqp_broker.messages("out")] == ["1000", "3000", "5000"]


def test_queue_expiry(amqp_broker: EmbeddedBroker, channel) -> None:
    channel.queue_declare("idle", arguments={"x-expires": 60_000})
    amqp_broker.clock.advance(59)
    assert amqp_broker.queue("idle").name == "idle"
    amqp_broker.clock.advance(2)
    assert "idle" not in [q.name for q in amqp_broker.queues()]


def test_consumer_timeout_trips(amqp_broker: EmbeddedBroker, channel) -> None:
    channel.queue_declare("slow", arguments={"x-consumer-timeout": 30 * 60 * 1000})
    channel.basic_publish("", "slow", b"job")
    channel.basic_consume("slow", lambda *args: None)
    amqp_broker.wait_for_queue_depth("slow", 1)
    wait_for(lambda: amqp_broker.queue("slow").unacked == 1, what="the delivery")
    amqp_broker.clock.advance(31 * 60)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as closed:
        channel.connection.process_data_events(time_limit=5)
        channel.basic_get("slow")
    assert closed.value.reply_code == 406
    assert "delivery acknowledgement on channel 1 timed out" in closed.value.reply_text


def test_heartbeats_stay_on_the_real_clock(amqp_broker: EmbeddedBroker) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_broker.url + "?heartbeat=2"))
    amqp_broker.clock.advance(HOUR)
    connection.process_data_events(time_limit=0.2)
    assert connection.is_open
    assert len(amqp_broker.connections()) == 1
    connection.close()


def test_the_clock_cannot_go_back(amqp_broker: EmbeddedBroker) -> None:
    with pytest.raises(ValueError, match="cannot go back"):
        amqp_broker.clock.advance(-1)
