"""pika BlockingConnection against RabbitMQ's message-lifecycle extensions: TTL and
dead-lettering, overflow, priorities, quorum queues, consumer timeouts, direct reply-to,
delayed messages and CC/BCC (RABBITMQ-REFERENCE.md §4)."""

from __future__ import annotations

import datetime
import time
from collections.abc import Iterator
from typing import Any

import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import ChannelClosedByBroker, NackError
from pika.spec import Basic, BasicProperties

from amqpbroker.testing import EmbeddedBroker, broker_in_thread, wait_for

pytestmark = pytest.mark.timeout(20)

CONNECT_TIMEOUTS = {"socket_timeout": 5, "blocked_connection_timeout": 5,
                    "stack_timeout": 5}
NEW_ENTRY_KEYS = ["count", "reason", "queue", "time", "exchange", "routing-keys"]
REPLY_TO = "amq.rabbitmq.reply-to"

Delivery = tuple[Basic.GetOk, BasicProperties, bytes]


def parameters(url: str) -> pika.URLParameters:
    params = pika.URLParameters(url)
    for name, value in CONNECT_TIMEOUTS.items():
        setattr(params, name, value)
    return params


def open_connection(url: str) -> pika.BlockingConnection:
    return pika.BlockingConnection(parameters(url))


@pytest.fixture
def connections() -> Iterator[list[pika.BlockingConnection]]:
    opened: list[pika.BlockingConnection] = []
    try:
        yield opened
    finally:
        for conn in reversed(opened):
            if conn.is_open:
                conn.close()


@pytest.fixture
def connect(amqp_url: str, connections: list[pika.BlockingConnection]):
    def factory() -> pika.BlockingConnection:
        conn = open_connection(amqp_url)
        connections.append(conn)
        return conn
    return factory


@pytest.fixture
def channel(connect) -> BlockingChannel:
    return connect().channel()


def get_message(channel: BlockingChannel, queue: str, what: str = "a message") -> Delivery:
    """Poll Basic.Get (auto-ack) until a message arrives."""
    def attempt() -> Delivery | None:
        method, props, body = channel.basic_get(queue, auto_ack=True)
        return (method, props, body) if method is not None else None
    return wait_for(attempt, what=f"{what} in {queue}")


def drain(channel: BlockingChannel, queue: str) -> list[bytes]:
    bodies = []
    while True:
        method, _, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return bodies
        bodies.append(body)


def dead_letter_sink(channel: BlockingChannel, exchange: str, queue: str) -> None:
    channel.exchange_declare(exchange, exchange_type="fanout")
    channel.queue_declare(queue)
    channel.queue_bind(queue, exchange)


def assert_new_death(entry: Any, *, reason: str, queue: str, exchange: str,
                     routing_keys: list[str], original_expiration: str | None = None) -> None:
    keys = NEW_ENTRY_KEYS + (["original-expiration"] if original_expiration is not None else [])
    assert isinstance(entry, dict), f"x-death entry is not a table: {entry!r}"
    assert list(entry) == keys
    # pika decodes a long `l` as pika.compat.long (a signed 32-bit `I` as plain int).
    assert type(entry["count"]) is pika.compat.long and entry["count"] == 1
    assert (entry["reason"], entry["queue"], entry["exchange"], entry["routing-keys"]) == (
        reason, queue, exchange, routing_keys)
    stamp = entry["time"]
    assert isinstance(stamp, datetime.datetime), f"time is {stamp!r}"
    stamp = stamp if stamp.tzinfo else stamp.replace(tzinfo=datetime.UTC)
    assert abs(stamp.timestamp() - time.time()) < 60
    if original_expiration is not None:
        assert entry["original-expiration"] == original_expiration


def assert_first_death(headers: dict[str, Any], reason: str, queue: str, exchange: str) -> None:
    assert (headers.get("x-first-death-reason"), headers.get("x-first-death-queue"),
            headers.get("x-first-death-exchange")) == (reason, queue, exchange)


# --- TTL and dead-lettering ------------------------------------------------------------


def test_per_message_expiration_is_dead_lettered_with_x_death(channel: BlockingChannel):
    dead_letter_sink(channel, "pk.exp.dlx", "pk.exp.dead")
    channel.queue_declare("pk.exp.q", arguments={"x-dead-letter-exchange": "pk.exp.dlx"})
    started = time.monotonic()
    channel.basic_publish("", "pk.exp.q", b"short",
                          BasicProperties(expiration="100", headers={"app": "kept"}))

    method, props, body = get_message(channel, "pk.exp.dead", "the expired message")
    assert time.monotonic() - started >= 0.09, "dead-lettered before its expiration"
    assert drain(channel, "pk.exp.q") == []
    assert (body, method.exchange, method.routing_key) == (b"short", "pk.exp.dlx", "pk.exp.q")
    assert props.expiration is None
    assert props.headers["app"] == "kept"
    assert len(props.headers["x-death"]) == 1
    assert_new_death(props.headers["x-death"][0], reason="expired", queue="pk.exp.q",
                     exchange="", routing_keys=["pk.exp.q"], original_expiration="100")
    assert_first_death(props.headers, "expired", "pk.exp.q", "")


def test_queue_ttl_expires_messages_never_delivered(channel: BlockingChannel):
    dead_letter_sink(channel, "pk.ttl.dlx", "pk.ttl.dead")
    channel.queue_declare("pk.ttl.q", arguments={"x-message-ttl": 50,
                                                 "x-dead-letter-exchange": "pk.ttl.dlx"})
    for body in (b"a", b"b"):
        channel.basic_publish("", "pk.ttl.q", body)
    get_message(channel, "pk.ttl.dead")
    get_message(channel, "pk.ttl.dead")
    assert channel.queue_declare("pk.ttl.q", passive=True).method.message_count == 0
    assert drain(channel, "pk.ttl.q") == []


def test_nack_without_requeue_dead_letters_as_rejected(channel: BlockingChannel):
    dead_letter_sink(channel, "pk.rej.dlx", "pk.rej.dead")
    channel.queue_declare("pk.rej.q", arguments={"x-dead-letter-exchange": "pk.rej.dlx"})
    channel.basic_publish("", "pk.rej.q", b"bad")
    method, _, _ = wait_for(lambda: _get_pending(channel, "pk.rej.q"), what="the message")
    channel.basic_nack(method.delivery_tag, requeue=False)
    dead_method, props, body = get_message(channel, "pk.rej.dead", "the rejected message")
    assert (body, dead_method.exchange) == (b"bad", "pk.rej.dlx")
    assert_new_death(props.headers["x-death"][0], reason="rejected", queue="pk.rej.q",
                     exchange="", routing_keys=["pk.rej.q"])
    assert_first_death(props.headers, "rejected", "pk.rej.q", "")


# --- overflow --------------------------------------------------------------------------


def test_reject_publish_overflow_nacks_the_publish(channel: BlockingChannel):
    channel.confirm_delivery()
    channel.queue_declare("pk.rp.q", arguments={"x-max-length": 1,
                                                "x-overflow": "reject-publish"})
    channel.basic_publish("", "pk.rp.q", b"in")
    with pytest.raises(NackError):
        channel.basic_publish("", "pk.rp.q", b"refused", mandatory=True)
    assert drain(channel, "pk.rp.q") == [b"in"]


def test_drop_head_overflow_dead_letters_maxlen(channel: BlockingChannel):
    dead_letter_sink(channel, "pk.dh.dlx", "pk.dh.dead")
    channel.queue_declare("pk.dh.q", arguments={"x-max-length": 1,
                                                "x-dead-letter-exchange": "pk.dh.dlx"})
    channel.basic_publish("", "pk.dh.q", b"old")
    channel.basic_publish("", "pk.dh.q", b"new")
    _, props, body = get_message(channel, "pk.dh.dead", "the dropped head")
    assert body == b"old"
    assert_new_death(props.headers["x-death"][0], reason="maxlen", queue="pk.dh.q",
                     exchange="", routing_keys=["pk.dh.q"])
    assert drain(channel, "pk.dh.q") == [b"new"]


# --- priority queue --------------------------------------------------------------------


def test_priority_queue_order(channel: BlockingChannel):
    channel.queue_declare("pk.prio.q", arguments={"x-max-priority": 5})
    for index, priority in enumerate((1, 5, None, 9, 0, 5, 3)):
        channel.basic_publish("", "pk.prio.q", str(index).encode(),
                              BasicProperties(priority=priority))
    got = []
    while True:
        method, props, body = channel.basic_get("pk.prio.q", auto_ack=True)
        if method is None:
            break
        got.append((body, props.priority))
    assert got == [(b"1", 5), (b"3", 9), (b"5", 5), (b"6", 3), (b"0", 1), (b"2", None),
                   (b"4", 0)]


# --- quorum queues ---------------------------------------------------------------------


def test_quorum_queue_requires_durable(connect):
    connection = connect()
    channel = connection.channel()
    with pytest.raises(ChannelClosedByBroker) as info:
        channel.queue_declare("pk.qq", durable=False, arguments={"x-queue-type": "quorum"})
    assert (info.value.reply_code, info.value.reply_text) == (
        406, "PRECONDITION_FAILED - invalid property 'non-durable' for queue 'pk.qq' in "
             "vhost '/'")
    assert connection.is_open


def test_quorum_queue_redelivery_has_x_delivery_count_and_limit(channel: BlockingChannel):
    dead_letter_sink(channel, "pk.dl.dlx", "pk.dl.dead")
    channel.queue_declare("pk.dl.q", durable=True, arguments={
        "x-queue-type": "quorum", "x-delivery-limit": 2, "x-dead-letter-exchange": "pk.dl.dlx"})
    channel.basic_publish("", "pk.dl.q", b"poison")
    counts = []
    for _ in range(3):
        method, props, _ = wait_for(lambda: _get_pending(channel, "pk.dl.q"),
                                    what="a delivery")
        counts.append((method.redelivered, (props.headers or {}).get("x-delivery-count")))
        channel.basic_nack(method.delivery_tag, requeue=True)
    assert counts == [(False, None), (True, 1), (True, 2)]
    _, props, body = get_message(channel, "pk.dl.dead", "the dead-lettered message")
    assert body == b"poison"
    assert props.headers["x-death"][0]["reason"] == "delivery_limit"
    assert props.headers["x-first-death-reason"] == "delivery_limit"
    assert drain(channel, "pk.dl.q") == []


def _get_pending(channel: BlockingChannel, queue: str) -> Delivery | None:
    method, props, body = channel.basic_get(queue)
    return (method, props, body) if method is not None else None


# --- consumer timeout ------------------------------------------------------------------


@pytest.fixture
def timeout_broker() -> Iterator[EmbeddedBroker]:
    with broker_in_thread(consumer_timeout=200) as broker:
        yield broker


def test_consumer_timeout_closes_channel_with_406(timeout_broker: EmbeddedBroker):
    connection = open_connection(timeout_broker.url)
    try:
        channel = connection.channel()
        channel.queue_declare("pk.slow")
        channel.basic_publish("", "pk.slow", b"never acked")
        delivered_at = None
        deadline = time.monotonic() + 5
        with pytest.raises(ChannelClosedByBroker) as info:
            for method, _, body in channel.consume("pk.slow", inactivity_timeout=0.02):
                if method is not None:
                    assert body == b"never acked"
                    delivered_at = time.monotonic()
                assert time.monotonic() < deadline, "the channel was never closed"
        assert delivered_at is not None
        assert time.monotonic() - delivered_at >= 0.15, "closed before the timeout"
        assert info.value.reply_code == 406
        assert info.value.reply_text.startswith(
            "PRECONDITION_FAILED - delivery acknowledgement on channel"), info.value.reply_text
        # The connection survives; the message is back in the queue.
        assert connection.is_open
        other = connection.channel()
        method, _, body = other.basic_get("pk.slow", auto_ack=True)
        assert method is not None and (body, method.redelivered) == (b"never acked", True)
    finally:
        if connection.is_open:
            connection.close()


# --- direct reply-to -------------------------------------------------------------------


def test_direct_reply_to_rpc(connect):
    requester_connection = connect()
    responder_connection = connect()
    requester = requester_connection.channel()
    responder = responder_connection.channel()
    responder.queue_declare("pk.rpc")

    replies: list[tuple[Basic.Deliver, BasicProperties, bytes]] = []
    requester.basic_consume(REPLY_TO, lambda _ch, method, props, body: replies.append(
        (method, props, body)), auto_ack=True)
    requester.basic_publish("", "pk.rpc", b"ping",
                            BasicProperties(reply_to=REPLY_TO, correlation_id="c-7"))

    _, props, body = get_message(responder, "pk.rpc", "the request")
    assert body == b"ping"
    assert props.reply_to.startswith("amq.rabbitmq.reply-to."), props.reply_to
    responder.basic_publish("", props.reply_to, b"pong",
                            BasicProperties(correlation_id=props.correlation_id))

    def received() -> bool:
        requester_connection.process_data_events(time_limit=0)
        return bool(replies)

    wait_for(received, what="the reply")
    reply_method, reply_props, reply_body = replies[0]
    assert (reply_body, reply_props.correlation_id) == (b"pong", "c-7")
    assert (reply_method.exchange, reply_method.routing_key) == ("", props.reply_to)


# --- delayed messages ------------------------------------------------------------------


def test_delayed_message_exchange(channel: BlockingChannel):
    channel.exchange_declare("pk.delayed", exchange_type="x-delayed-message",
                             arguments={"x-delayed-type": "direct"})
    channel.queue_declare("pk.delayed.q")
    channel.queue_bind("pk.delayed.q", "pk.delayed", "k")
    started = time.monotonic()
    channel.basic_publish("pk.delayed", "k", b"later", BasicProperties(headers={"x-delay": 300}))
    channel.basic_publish("pk.delayed", "k", b"now")

    _, _, body = get_message(channel, "pk.delayed.q", "the undelayed message")
    assert body == b"now"
    assert channel.basic_get("pk.delayed.q", auto_ack=True)[0] is None
    method, _, body = get_message(channel, "pk.delayed.q", "the delayed message")
    assert time.monotonic() - started >= 0.29, "the delayed message arrived early"
    assert (body, method.exchange, method.routing_key) == (b"later", "pk.delayed", "k")


# --- CC / BCC --------------------------------------------------------------------------


def test_cc_and_bcc(channel: BlockingChannel):
    channel.exchange_declare("pk.cc", exchange_type="direct")
    for key in ("to", "cc", "bcc", "none"):
        channel.queue_declare(f"pk.cc.{key}")
        channel.queue_bind(f"pk.cc.{key}", "pk.cc", key)
    channel.basic_publish("pk.cc", "to", b"memo",
                          BasicProperties(headers={"CC": ["cc"], "BCC": ["bcc"]}))
    for key in ("to", "cc", "bcc"):
        method, props, body = get_message(channel, f"pk.cc.{key}")
        assert (body, method.routing_key) == (b"memo", "to")
        assert props.headers == {"CC": ["cc"]}, key
    assert drain(channel, "pk.cc.none") == []
