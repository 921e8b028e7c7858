"""aio-pika against RabbitMQ's message-lifecycle extensions: TTLs and dead-lettering (x-death),
queue expiry, length limits, priorities, single active consumer, consumer priorities,
delivery limits and quorum queues, consumer timeouts, direct reply-to, delayed messages and
CC/BCC (RABBITMQ-REFERENCE.md §4)."""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aio_pika
import pytest
from aio_pika import ExchangeType, Message
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractIncomingMessage,
    AbstractQueue,
)
from aio_pika.exceptions import DeliveryError
from aiormq.exceptions import ChannelNotFoundEntity, ChannelPreconditionFailed
from integration_support import DEFAULT_TIMEOUT, Collector, Connector, async_wait_for, passive
from pamqp.commands import Basic

from amqpbroker.testing import EmbeddedBroker, broker_in_thread

pytestmark = pytest.mark.timeout(20)

NEW_ENTRY_KEYS = ["count", "reason", "queue", "time", "exchange", "routing-keys"]
UPDATED_ENTRY_KEYS = ["count", "exchange", "queue", "reason", "routing-keys", "time"]
REPLY_TO = "amq.rabbitmq.reply-to"


# --- helpers ---------------------------------------------------------------------------


async def next_message(queue: AbstractQueue, timeout: float = DEFAULT_TIMEOUT,
                       what: str = "a message") -> AbstractIncomingMessage:
    """Poll Basic.Get (no_ack) until a message arrives."""
    return await async_wait_for(lambda: queue.get(no_ack=True, fail=False), timeout,
                                what=f"{what} in {queue.name}")


async def drain(queue: AbstractQueue) -> list[bytes]:
    """Basic.Get (no_ack) until Get-Empty: the bodies, in order."""
    bodies = []
    while (message := await queue.get(no_ack=True, fail=False)) is not None:
        bodies.append(message.body)
    return bodies


async def dead_letter_sink(channel: AbstractChannel, exchange: str,
                           queue: str) -> AbstractQueue:
    """A fanout dead-letter exchange and the queue that collects what it receives."""
    dlx = await channel.declare_exchange(exchange, ExchangeType.FANOUT)
    sink = await channel.declare_queue(queue)
    await sink.bind(dlx)
    return sink


def as_utc(value: datetime.datetime) -> datetime.datetime:
    return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)


def assert_death(entry: Any, *, count: int, reason: str, queue: str, exchange: str,
                 routing_keys: list[str], original_expiration: str | None = None,
                 keys: list[str] | None = None) -> None:
    """An x-death entry, field by field, with RabbitMQ's key order (§4.1): a new entry
    `count, reason, queue, time, exchange, routing-keys[, original-expiration]`."""
    assert isinstance(entry, dict), f"x-death entry is not a table: {entry!r}"
    expected_keys = keys if keys is not None else (
        NEW_ENTRY_KEYS + (["original-expiration"] if original_expiration is not None else []))
    assert list(entry) == expected_keys
    assert type(entry["count"]) is int and entry["count"] == count
    assert entry["reason"] == reason
    assert entry["queue"] == queue
    assert entry["exchange"] == exchange
    assert entry["routing-keys"] == routing_keys
    assert isinstance(entry["time"], datetime.datetime), f"time is {entry['time']!r}"
    assert abs(as_utc(entry["time"]).timestamp() - time.time()) < 60
    if original_expiration is not None:
        assert entry["original-expiration"] == original_expiration


def assert_first_death(headers: dict[str, Any], reason: str, queue: str, exchange: str) -> None:
    assert (headers.get("x-first-death-reason"), headers.get("x-first-death-queue"),
            headers.get("x-first-death-exchange")) == (reason, queue, exchange)


# --- per-queue and per-message TTL -----------------------------------------------------


async def test_queue_ttl_dead_letters_expired_message_with_x_death(connect: Connector):
    connection = await connect()
    channel = await connection.channel()
    dead = await dead_letter_sink(channel, "ttl.dlx", "ttl.dead")
    queue = await channel.declare_queue(
        "ttl.q", arguments={"x-message-ttl": 100, "x-dead-letter-exchange": "ttl.dlx"})
    started = time.monotonic()
    await channel.default_exchange.publish(
        Message(b"late", headers={"app": "kept"}, correlation_id="corr-1"),
        routing_key="ttl.q")

    message = await next_message(dead, what="the expired message")
    assert time.monotonic() - started >= 0.09, "dead-lettered before its TTL passed"
    # Expired: gone from its queue, never delivered from it.
    assert await queue.get(no_ack=True, fail=False) is None
    assert (await passive(channel, "ttl.q")).message_count == 0

    assert (message.body, message.exchange, message.routing_key) == (b"late", "ttl.dlx", "ttl.q")
    assert message.correlation_id == "corr-1"
    assert message.expiration is None
    headers = message.headers
    assert headers["app"] == "kept"
    assert isinstance(headers["x-death"], list) and len(headers["x-death"]) == 1
    assert_death(headers["x-death"][0], count=1, reason="expired", queue="ttl.q", exchange="",
                 routing_keys=["ttl.q"])
    assert_first_death(headers, "expired", "ttl.q", "")


async def test_per_message_expiration_dead_letters_with_original_expiration(
        connect: Connector):
    connection = await connect()
    channel = await connection.channel()
    dead = await dead_letter_sink(channel, "exp.dlx", "exp.dead")
    exchange = await channel.declare_exchange("exp.x", ExchangeType.DIRECT)
    queue = await channel.declare_queue("exp.q", arguments={"x-dead-letter-exchange": "exp.dlx"})
    await queue.bind(exchange, "k1")
    await queue.bind(exchange, "k2")
    started = time.monotonic()
    # Routed by k1 and (CC) k2 to the same queue: one copy; it expires after 100 ms.
    await exchange.publish(Message(b"short-lived", expiration=0.1, headers={"CC": ["k2"]}),
                           routing_key="k1")
    # A message without expiration in the same queue stays.
    await exchange.publish(Message(b"stays"), routing_key="k1")

    message = await next_message(dead, what="the expired message")
    assert time.monotonic() - started >= 0.09, "dead-lettered before its expiration"
    assert await drain(queue) == [b"stays"]
    assert await drain(dead) == []

    assert (message.body, message.exchange, message.routing_key) == (
        b"short-lived", "exp.dlx", "k1")
    # The per-message expiration is removed and kept in the x-death entry.
    assert message.expiration is None
    headers = message.headers
    assert headers["CC"] == ["k2"]
    assert len(headers["x-death"]) == 1
    assert_death(headers["x-death"][0], count=1, reason="expired", queue="exp.q",
                 exchange="exp.x", routing_keys=["k1", "k2"], original_expiration="100")
    assert_first_death(headers, "expired", "exp.q", "exp.x")


async def test_expired_message_is_never_delivered_to_a_busy_consumer(connect: Connector):
    connection = await connect()
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=1)
    dead = await dead_letter_sink(channel, "busy.dlx", "busy.dead")
    queue = await channel.declare_queue("busy.q",
                                        arguments={"x-dead-letter-exchange": "busy.dlx"})
    collector = Collector()
    await queue.consume(collector)
    publisher = await connection.channel()
    await publisher.default_exchange.publish(Message(b"first"), routing_key="busy.q")
    await collector.wait(1)
    # The consumer holds its only credit; this one waits in the queue and expires there.
    await publisher.default_exchange.publish(Message(b"expires", expiration=0.05),
                                             routing_key="busy.q")
    expired = await next_message(dead, what="the expired message")
    assert expired.body == b"expires"
    await collector.messages[0].ack()
    await publisher.default_exchange.publish(Message(b"after"), routing_key="busy.q")
    await collector.wait(2)
    assert collector.bodies == [b"first", b"after"]


# --- queue expiry (x-expires) ----------------------------------------------------------


def queue_exists(broker: EmbeddedBroker, name: str) -> bool:
    """Inspect the broker directly: a passive declare would reset the x-expires timer."""
    return broker.call(lambda: name in broker.server.broker.vhosts["/"].queues)


async def test_unused_queue_expires_and_one_with_a_consumer_does_not(
        connect: Connector, amqp_broker: EmbeddedBroker):
    connection = await connect()
    channel = await connection.channel()
    held = await channel.declare_queue("xexp.held", arguments={"x-expires": 200})
    tag = await held.consume(Collector())
    started = time.monotonic()
    await channel.declare_queue("xexp.idle", arguments={"x-expires": 200})

    await async_wait_for(lambda: not queue_exists(amqp_broker, "xexp.idle"),
                         what="xexp.idle to expire")
    assert time.monotonic() - started >= 0.18, "queue expired before its x-expires"
    checker = await connection.channel()
    with pytest.raises(ChannelNotFoundEntity) as info:
        await passive(checker, "xexp.idle")
    assert info.value.args[0] == "NOT_FOUND - no queue 'xexp.idle' in vhost '/'"
    # Declared earlier with the same x-expires, but it has a consumer: still there.
    declare_ok = await passive(channel, "xexp.held")
    assert declare_ok.consumer_count == 1

    await held.cancel(tag)
    cancelled = time.monotonic()
    await async_wait_for(lambda: not queue_exists(amqp_broker, "xexp.held"),
                         what="xexp.held to expire after its consumer left")
    assert time.monotonic() - cancelled >= 0.18


# --- x-max-length overflow -------------------------------------------------------------


async def test_max_length_drop_head_dead_letters_the_oldest(connect: Connector):
    connection = await connect()
    channel = await connection.channel()
    dead = await dead_letter_sink(channel, "ml.dlx", "ml.dead")
    queue = await channel.declare_queue(
        "ml.q", arguments={"x-max-length": 2, "x-dead-letter-exchange": "ml.dlx"})
    for body in (b"1", b"2", b"3"):
        confirm = await channel.default_exchange.publish(Message(body), routing_key="ml.q")
        assert isinstance(confirm, Basic.Ack)

    assert (await passive(channel, "ml.q")).message_count == 2
    assert await drain(queue) == [b"2", b"3"]
    dropped = await next_message(dead, what="the dropped head")
    assert (dropped.body, dropped.exchange, dropped.routing_key) == (b"1", "ml.dlx", "ml.q")
    assert_death(dropped.headers["x-death"][0], count=1, reason="maxlen", queue="ml.q",
                 exchange="", routing_keys=["ml.q"])
    assert_first_death(dropped.headers, "maxlen", "ml.q", "")
    assert await drain(dead) == []


async def test_max_length_reject_publish_nacks_and_never_returns(connect_plain: Connector):
    connection = await connect_plain()
    channel = await connection.channel(on_return_raises=True)
    returned: list[AbstractIncomingMessage] = []
    channel.return_callbacks.add(lambda _sender, message: returned.append(message))
    queue = await channel.declare_queue(
        "rp.q", arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    assert isinstance(
        await channel.default_exchange.publish(Message(b"in"), routing_key="rp.q"), Basic.Ack)

    with pytest.raises(DeliveryError) as info:
        await channel.default_exchange.publish(Message(b"refused"), routing_key="rp.q",
                                               mandatory=True)
    assert isinstance(info.value.frame, Basic.Nack), f"got {info.value.frame!r}"
    assert returned == []
    assert await drain(queue) == [b"in"]
    # Room again: accepted.
    assert isinstance(
        await channel.default_exchange.publish(Message(b"again"), routing_key="rp.q"),
        Basic.Ack)
    assert await drain(queue) == [b"again"]


async def test_max_length_reject_publish_dlx_nacks_and_dead_letters(connect: Connector):
    connection = await connect()
    channel = await connection.channel()
    dead = await dead_letter_sink(channel, "rpd.dlx", "rpd.dead")
    queue = await channel.declare_queue(
        "rpd.q", arguments={"x-max-length": 1, "x-overflow": "reject-publish-dlx",
                            "x-dead-letter-exchange": "rpd.dlx"})
    assert isinstance(
        await channel.default_exchange.publish(Message(b"in"), routing_key="rpd.q"), Basic.Ack)
    with pytest.raises(DeliveryError) as info:
        await channel.default_exchange.publish(Message(b"refused", headers={"n": 2}),
                                               routing_key="rpd.q")
    assert isinstance(info.value.frame, Basic.Nack), f"got {info.value.frame!r}"

    refused = await next_message(dead, what="the refused publish")
    assert (refused.body, refused.exchange, refused.routing_key) == (
        b"refused", "rpd.dlx", "rpd.q")
    assert refused.headers["n"] == 2
    assert_death(refused.headers["x-death"][0], count=1, reason="maxlen", queue="rpd.q",
                 exchange="", routing_keys=["rpd.q"])
    assert await drain(queue) == [b"in"]


async def test_fanout_to_full_reject_publish_queue_is_nacked_though_stored_elsewhere(
        connect: Connector):
    connection = await connect()
    channel = await connection.channel()
    fanout = await channel.declare_exchange("rpf.x", ExchangeType.FANOUT)
    full = await channel.declare_queue(
        "rpf.full", arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    normal = await channel.declare_queue("rpf.normal")
    await full.bind(fanout)
    await normal.bind(fanout)
    assert isinstance(await fanout.publish(Message(b"1"), routing_key=""), Basic.Ack)
    with pytest.raises(DeliveryError) as info:
        await fanout.publish(Message(b"2"), routing_key="")
    assert isinstance(info.value.frame, Basic.Nack)
    assert await drain(normal) == [b"1", b"2"]
    assert await drain(full) == [b"1"]


# --- rejection and a retry loop (x-death count) ----------------------------------------


async def test_reject_retry_loop_increments_x_death_count(connect: Connector):
    connection = await connect()
    channel = await connection.channel()
    retry_x = await channel.declare_exchange("retry.x", ExchangeType.FANOUT)
    retry = await channel.declare_queue("retry.q", arguments={
        "x-message-ttl": 50, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "work"})
    await retry.bind(retry_x)
    work = await channel.declare_queue("work", arguments={"x-dead-letter-exchange": "retry.x"})
    collector = Collector()
    await work.consume(collector)
    await channel.default_exchange.publish(Message(b"job", headers={"attempt": "any"}),
                                           routing_key="work")

    for delivered in range(1, 4):
        await collector.wait(delivered)
        message = collector.messages[-1]
        deaths = (message.headers or {}).get("x-death", [])
        counts = {(d["queue"], d["reason"]): d["count"] for d in deaths}
        expected = {} if delivered == 1 else {
            ("work", "rejected"): delivered - 1, ("retry.q", "expired"): delivered - 1}
        assert counts == expected, f"delivery {delivered}"
        if delivered == 3:
            await message.nack(requeue=False)
        else:
            await message.reject(requeue=False)

    await collector.wait(4)
    final = collector.messages[3]
    assert (final.body, final.exchange, final.routing_key) == (b"job", "", "work")
    headers = final.headers
    assert headers["attempt"] == "any"
    # Most recent first; both entries were updated, so their keys are sorted.
    deaths = headers["x-death"]
    assert [(d["queue"], d["reason"]) for d in deaths] == [
        ("retry.q", "expired"), ("work", "rejected")]
    assert_death(deaths[0], count=3, reason="expired", queue="retry.q", exchange="retry.x",
                 routing_keys=["work"], keys=UPDATED_ENTRY_KEYS)
    assert_death(deaths[1], count=3, reason="rejected", queue="work", exchange="",
                 routing_keys=["work"], keys=UPDATED_ENTRY_KEYS)
    assert_first_death(headers, "rejected", "work", "")
    await final.ack()
    assert len(collector.messages) == 4


async def test_rejected_message_keeps_original_expiration(connect: Connector):
    connection = await connect()
    channel = await connection.channel()
    dead = await dead_letter_sink(channel, "rej.dlx", "rej.dead")
    queue = await channel.declare_queue("rej.q",
                                        arguments={"x-dead-letter-exchange": "rej.dlx"})
    await channel.default_exchange.publish(Message(b"no", expiration=60), routing_key="rej.q")
    message = await async_wait_for(lambda: queue.get(fail=False), what="the message")
    await message.reject(requeue=False)
    rejected = await next_message(dead, what="the rejected message")
    assert rejected.expiration is None
    assert_death(rejected.headers["x-death"][0], count=1, reason="rejected", queue="rej.q",
                 exchange="", routing_keys=["rej.q"], original_expiration="60000")
    assert_first_death(rejected.headers, "rejected", "rej.q", "")


# --- priority queue --------------------------------------------------------------------


async def test_priority_queue_delivers_highest_first_fifo_within_a_level(connect: Connector):
    connection = await connect()
    channel = await connection.channel()
    await channel.declare_queue("prio.q", arguments={"x-max-priority": 5})
    # aio-pika's Message turns "no priority" into 0 both ways: use the aiormq channel to
    # publish without the property and to see it as delivered.
    underlay = await channel.get_underlay_channel()
    published = [(b"p1", 1), (b"p5a", 5), (b"none", None), (b"p9", 9), (b"p0", 0),
                 (b"p5b", 5), (b"p3", 3)]
    for body, priority in published:
        confirm = await underlay.basic_publish(
            body, routing_key="prio.q", properties=Basic.Properties(priority=priority))
        assert isinstance(confirm, Basic.Ack)
    got = []
    while isinstance((delivered := await underlay.basic_get("prio.q", no_ack=True)).delivery,
                     Basic.GetOk):
        got.append((delivered.body, delivered.header.properties.priority))
    # 9 counts as 5 but is delivered unchanged; no priority counts as 0.
    assert got == [(b"p5a", 5), (b"p9", 9), (b"p5b", 5), (b"p3", 3), (b"p1", 1),
                   (b"none", None), (b"p0", 0)]


# --- single active consumer ------------------------------------------------------------


async def test_single_active_consumer_feeds_only_the_first(connect: Connector):
    connection = await connect()
    first_channel = await connection.channel()
    second_channel = await connection.channel()
    arguments = {"x-single-active-consumer": True}
    first_queue = await first_channel.declare_queue("sac.q", arguments=arguments)
    second_queue = await second_channel.declare_queue("sac.q", arguments=arguments)
    first, second = Collector(), Collector()
    first_tag = await first_queue.consume(first, no_ack=True)
    await second_queue.consume(second, no_ack=True)
    assert (await passive(first_channel, "sac.q")).consumer_count == 2

    publisher = await connection.channel()
    for body in (b"a", b"b", b"c", b"d"):
        await publisher.default_exchange.publish(Message(body), routing_key="sac.q")
    await first.wait(4)
    assert first.bodies == [b"a", b"b", b"c", b"d"]
    assert second.bodies == []

    await first_queue.cancel(first_tag)
    for body in (b"e", b"f"):
        await publisher.default_exchange.publish(Message(body), routing_key="sac.q")
    await second.wait(2)
    assert second.bodies == [b"e", b"f"]
    assert first.bodies == [b"a", b"b", b"c", b"d"]


# --- consumer priorities ---------------------------------------------------------------


async def test_higher_priority_consumer_is_fed_while_it_has_credit(connect: Connector):
    connection = await connect()
    lo_channel = await connection.channel()
    await lo_channel.set_qos(prefetch_count=100)
    hi_channel = await connection.channel()
    await hi_channel.set_qos(prefetch_count=1)
    lo_queue = await lo_channel.declare_queue("cprio.q")
    hi_queue = await hi_channel.declare_queue("cprio.q")
    lo, hi = Collector(), Collector()
    # The low-priority consumer comes first: round-robin would feed it first.
    await lo_queue.consume(lo, arguments={"x-priority": 0})
    await hi_queue.consume(hi, arguments={"x-priority": 10})

    publisher = await connection.channel()
    for index in range(5):
        await publisher.default_exchange.publish(Message(str(index).encode()),
                                                 routing_key="cprio.q")
    await async_wait_for(lambda: len(lo.messages) + len(hi.messages) >= 5, what="5 deliveries")
    assert hi.bodies == [b"0"]
    assert lo.bodies == [b"1", b"2", b"3", b"4"]

    # With credit again, the high-priority consumer takes the next message.
    await hi.messages[0].ack()
    await publisher.default_exchange.publish(Message(b"5"), routing_key="cprio.q")
    await hi.wait(2)
    assert hi.bodies == [b"0", b"5"]
    assert len(lo.messages) == 4


# --- quorum queues: delivery limit, x-delivery-count -----------------------------------


QUORUM = {"x-queue-type": "quorum"}


async def test_delivery_limit_dead_letters_after_too_many_returns(connect: Connector):
    connection = await connect()
    channel = await connection.channel()
    dead = await dead_letter_sink(channel, "dl.dlx", "dl.dead")
    queue = await channel.declare_queue("dl.q", durable=True, arguments={
        **QUORUM, "x-delivery-limit": 2, "x-dead-letter-exchange": "dl.dlx"})
    collector = Collector()
    await queue.consume(collector)
    await channel.default_exchange.publish(Message(b"poison"), routing_key="dl.q")

    for delivered in range(1, 4):
        await collector.wait(delivered)
        await collector.messages[-1].nack(requeue=True)
    dead_message = await next_message(dead, what="the message over its delivery limit")

    deliveries = collector.messages
    assert len(deliveries) == 3
    assert [m.redelivered for m in deliveries] == [False, True, True]
    assert "x-delivery-count" not in (deliveries[0].headers or {})
    assert [m.headers.get("x-delivery-count") for m in deliveries[1:]] == [1, 2]
    assert (dead_message.body, dead_message.exchange, dead_message.routing_key) == (
        b"poison", "dl.dlx", "dl.q")
    assert_death(dead_message.headers["x-death"][0], count=1, reason="delivery_limit",
                 queue="dl.q", exchange="", routing_keys=["dl.q"])
    assert_first_death(dead_message.headers, "delivery_limit", "dl.q", "")
    assert (await passive(channel, "dl.q")).message_count == 0
    assert len(collector.messages) == 3


async def test_quorum_queue_must_be_durable(connect_plain: Connector):
    connection = await connect_plain()
    channel = await connection.channel()
    with pytest.raises(ChannelPreconditionFailed) as info:
        await (await channel.get_underlay_channel()).queue_declare(
            "qq.transient", durable=False, arguments=QUORUM)
    assert info.value.args[0] == (
        "PRECONDITION_FAILED - invalid property 'non-durable' for queue 'qq.transient' in "
        "vhost '/'")
    other = await connection.channel()
    declare_ok = await (await other.get_underlay_channel()).queue_declare(
        "qq.durable", durable=True, arguments=QUORUM)
    assert declare_ok.queue == "qq.durable"


async def test_quorum_queue_redelivery_carries_x_delivery_count(connect: Connector):
    connection = await connect()
    channel = await connection.channel()
    queue = await channel.declare_queue("qq.count", durable=True, arguments=QUORUM)
    await channel.default_exchange.publish(Message(b"again", headers={"k": "v"}),
                                           routing_key="qq.count")
    first = await async_wait_for(lambda: queue.get(fail=False), what="the message")
    assert not first.redelivered
    assert first.headers == {"k": "v"}
    await first.nack(requeue=True)
    second = await async_wait_for(lambda: queue.get(fail=False), what="the redelivery")
    assert second.redelivered
    assert second.headers == {"k": "v", "x-delivery-count": 1}
    await second.reject(requeue=True)
    third = await async_wait_for(lambda: queue.get(fail=False), what="the second redelivery")
    assert third.headers["x-delivery-count"] == 2
    await third.ack()


# --- consumer acknowledgement timeout ----------------------------------------------------


@pytest.fixture
def timeout_broker() -> Iterator[EmbeddedBroker]:
    with broker_in_thread(consumer_timeout=200) as broker:
        yield broker


@pytest.fixture
async def timeout_connection(timeout_broker: EmbeddedBroker) -> AsyncIterator[AbstractConnection]:
    connection = await aio_pika.connect(timeout_broker.url, timeout=DEFAULT_TIMEOUT)
    try:
        yield connection
    finally:
        if not connection.is_closed:
            await asyncio.wait_for(connection.close(), DEFAULT_TIMEOUT)


async def test_consumer_timeout_closes_the_channel_not_the_connection(
        timeout_connection: AbstractConnection):
    connection = timeout_connection
    channel = await connection.channel()
    closed: list[BaseException | None] = []
    closed_at: list[float] = []

    def on_close(_sender: Any, exc: BaseException | None) -> None:
        closed.append(exc)
        closed_at.append(time.monotonic())

    channel.close_callbacks.add(on_close)
    queue = await channel.declare_queue("slow.q")
    collector = Collector()
    await queue.consume(collector)
    await channel.default_exchange.publish(Message(b"never acked"), routing_key="slow.q")
    await collector.wait(1)

    await async_wait_for(lambda: closed, what="the consumer timeout to close the channel")
    assert closed_at[0] - collector.times[0] >= 0.15, "closed before the consumer timeout"
    exc = closed[0]
    assert isinstance(exc, ChannelPreconditionFailed), f"closed with {exc!r}"
    text = exc.args[0]
    assert text.startswith("PRECONDITION_FAILED - delivery acknowledgement on channel"), text
    assert "timed out. Timeout value used: 200 ms" in text

    # The connection is fine; the unacked message went back to the queue.
    assert not connection.is_closed
    other = await connection.channel()
    slow = await other.declare_queue("slow.q", passive=True)
    again = await async_wait_for(lambda: slow.get(no_ack=True, fail=False),
                                 what="the unacked message back in its queue")
    assert (again.body, again.redelivered) == (b"never acked", True)


# --- direct reply-to -------------------------------------------------------------------


async def test_direct_reply_to_rpc(connect_plain: Connector):
    requester_connection = await connect_plain()
    responder_connection = await connect_plain()
    responder_channel = await responder_connection.channel()
    service = await responder_channel.declare_queue("rpc.service")
    seen_reply_to: list[str] = []

    async def respond(request: AbstractIncomingMessage) -> None:
        async with request.process():
            assert request.reply_to is not None
            seen_reply_to.append(request.reply_to)
            await responder_channel.default_exchange.publish(
                Message(b"pong:" + request.body, correlation_id=request.correlation_id),
                routing_key=request.reply_to)

    await service.consume(respond)

    requester = await requester_connection.channel()
    reply_queue = await requester.get_queue(REPLY_TO, ensure=False)
    replies = Collector()
    await reply_queue.consume(replies, no_ack=True)
    await requester.default_exchange.publish(
        Message(b"ping", reply_to=REPLY_TO, correlation_id="rpc-1"), routing_key="rpc.service")

    await replies.wait(1)
    reply = replies.messages[0]
    assert (reply.body, reply.correlation_id) == (b"pong:ping", "rpc-1")
    [reply_to] = seen_reply_to
    assert reply_to.startswith("amq.rabbitmq.reply-to.")
    assert (reply.exchange, reply.routing_key) == ("", reply_to)

    # Once the requester is gone its name routes nowhere: a mandatory reply comes back.
    await requester_connection.close()
    stale = await responder_connection.channel(on_return_raises=True)
    with pytest.raises(DeliveryError) as info:
        await stale.default_exchange.publish(Message(b"late"), routing_key=reply_to,
                                             mandatory=True)
    frame = info.value.frame
    assert isinstance(frame, Basic.Return)
    assert (frame.reply_code, frame.reply_text) == (312, "NO_ROUTE")


async def test_reply_to_pseudo_queue_passive_declare(connect_plain: Connector):
    connection = await connect_plain()
    channel = await connection.channel()
    declare_ok = await passive(channel, REPLY_TO)
    assert (declare_ok.queue, declare_ok.message_count, declare_ok.consumer_count) == (
        REPLY_TO, 0, 1)


# --- delayed messages (x-delayed-message) ----------------------------------------------


async def test_delayed_message_exchange_holds_x_delay_messages(connect: Connector):
    connection = await connect()
    channel = await connection.channel()
    exchange = await channel.declare_exchange(
        "delayed.x", "x-delayed-message", arguments={"x-delayed-type": "direct"})
    queue = await channel.declare_queue("delayed.q")
    await queue.bind(exchange, "k")

    started = time.monotonic()
    await exchange.publish(Message(b"later", headers={"x-delay": 300}), routing_key="k")
    await exchange.publish(Message(b"now"), routing_key="k")
    # The undelayed one is routed at once; the delayed one is not there yet.
    immediate = await next_message(queue, what="the undelayed message")
    assert immediate.body == b"now"
    assert time.monotonic() - started < 0.25, "the undelayed message was held too"
    assert await queue.get(no_ack=True, fail=False) is None

    delayed = await next_message(queue, what="the delayed message")
    assert time.monotonic() - started >= 0.29, "the delayed message arrived early"
    assert (delayed.body, delayed.exchange, delayed.routing_key) == (b"later", "delayed.x", "k")
    assert await queue.get(no_ack=True, fail=False) is None


async def test_delayed_message_exchange_routes_by_its_delayed_type(connect: Connector):
    connection = await connect()
    channel = await connection.channel()
    exchange = await channel.declare_exchange(
        "delayed.direct", "x-delayed-message", arguments={"x-delayed-type": "direct"})
    matching = await channel.declare_queue("delayed.match")
    other = await channel.declare_queue("delayed.other")
    await matching.bind(exchange, "yes")
    await other.bind(exchange, "no")
    await exchange.publish(Message(b"d", headers={"x-delay": 50}), routing_key="yes")
    assert (await next_message(matching)).body == b"d"
    assert await drain(other) == []


# --- CC / BCC --------------------------------------------------------------------------


async def test_cc_and_bcc_route_to_more_queues_and_bcc_is_stripped(connect: Connector):
    connection = await connect()
    channel = await connection.channel()
    exchange = await channel.declare_exchange("cc.x", ExchangeType.DIRECT)
    queues = {}
    for key in ("main", "copy", "blind", "unused"):
        queues[key] = await channel.declare_queue(f"cc.{key}")
        await queues[key].bind(exchange, key)
    await exchange.publish(
        Message(b"memo", headers={"CC": ["copy"], "BCC": ["blind"], "x": 1}),
        routing_key="main")

    for key in ("main", "copy", "blind"):
        message = await next_message(queues[key], what=f"the copy for {key}")
        assert message.body == b"memo"
        assert message.routing_key == "main"
        assert message.headers == {"CC": ["copy"], "x": 1}, key
        assert await drain(queues[key]) == []
    assert await drain(queues["unused"]) == []


async def test_cc_bcc_on_the_default_exchange(connect: Connector):
    connection = await connect()
    channel = await connection.channel()
    first = await channel.declare_queue("ccd.first")
    second = await channel.declare_queue("ccd.second")
    third = await channel.declare_queue("ccd.third")
    await channel.default_exchange.publish(
        Message(b"m", headers={"CC": ["ccd.second", "ccd.first"], "BCC": ["ccd.third"]}),
        routing_key="ccd.first")
    for queue in (first, second, third):
        message = await next_message(queue)
        assert message.headers == {"CC": ["ccd.second", "ccd.first"]}
        # One copy per queue even when a queue is named twice.
        assert await drain(queue) == []
