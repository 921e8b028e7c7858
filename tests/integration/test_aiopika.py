"""aio-pika (plain and robust connections) against the broker: RabbitMQ 3.x semantics."""

from __future__ import annotations

import asyncio
import datetime
import os
import re
from typing import Any

import aio_pika
import pytest
from aio_pika import DeliveryMode, ExchangeType, Message
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from aio_pika.exceptions import DeliveryError, QueueEmpty
from aiormq.exceptions import ChannelAccessRefused, ChannelLockedResource, ChannelNotFoundEntity
from integration_support import Collector, Connector, async_wait_for, passive
from pamqp.commands import Basic

pytestmark = pytest.mark.timeout(20)

LOCKED = ("RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{}' in vhost "
          "'/'. It could be originally declared on another connection or the exclusive "
          "property value does not match that of the original declaration.")


# --- helpers ---------------------------------------------------------------------------


async def ready_count(connection: aio_pika.abc.AbstractConnection, name: str) -> int:
    channel = await connection.channel()
    try:
        return (await passive(channel, name)).message_count
    finally:
        await channel.close()


async def drain(queue: AbstractQueue) -> list[tuple[bytes, bool]]:
    """Basic.Get (no_ack) until Get-Empty: (body, redelivered) of each message."""
    got = []
    while (message := await queue.get(no_ack=True, fail=False)) is not None:
        got.append((message.body, message.redelivered))
    return got


async def publish_all(channel: AbstractChannel, routing_key: str, bodies: list[bytes],
                      exchange: str = "") -> None:
    target = (channel.default_exchange if not exchange
              else await channel.get_exchange(exchange, ensure=False))
    for body in bodies:
        await target.publish(Message(body), routing_key=routing_key)


def numbered(count: int, start: int = 0) -> list[bytes]:
    return [str(i).encode() for i in range(start, start + count)]


async def queue_gone(connection: aio_pika.abc.AbstractConnection, name: str) -> bool:
    channel = await connection.channel()
    try:
        await passive(channel, name)
    except ChannelNotFoundEntity:
        return True
    await channel.close()
    return False


# --- declare, bind, purge, delete ------------------------------------------------------


async def test_queue_declare_bind_unbind_purge_delete_report_counts(connect: Connector):
    connection = await connect()
    channel = await connection.channel()
    exchange = await channel.declare_exchange("life.x", ExchangeType.DIRECT)
    queue = await channel.declare_queue("life.q")
    assert queue.declaration_result.queue == "life.q"
    assert queue.declaration_result.message_count == 0
    assert queue.declaration_result.consumer_count == 0

    await queue.bind(exchange, "k")
    for body in numbered(3):
        await exchange.publish(Message(body), routing_key="k")
    again = await passive(channel, "life.q")
    assert (again.message_count, again.consumer_count) == (3, 0)

    purged = await queue.purge()
    assert purged.message_count == 3
    assert await ready_count(connection, "life.q") == 0

    for body in numbered(2):
        await exchange.publish(Message(body), routing_key="k")
    await queue.unbind(exchange, "k")
    await exchange.publish(Message(b"unrouted"), routing_key="k", mandatory=False)
    assert await ready_count(connection, "life.q") == 2

    deleted = await queue.delete(if_unused=False, if_empty=False)
    assert deleted.message_count == 2
    probe = await connection.channel()
    with pytest.raises(ChannelNotFoundEntity) as info:
        await passive(probe, "life.q")
    assert info.value.args[0] == "NOT_FOUND - no queue 'life.q' in vhost '/'"

    await exchange.delete()
    probe = await connection.channel()
    with pytest.raises(ChannelNotFoundEntity) as info:
        await (await probe.get_underlay_channel()).exchange_declare("life.x", passive=True)
    assert info.value.args[0] == "NOT_FOUND - no exchange 'life.x' in vhost '/'"


async def test_delete_missing_queue_is_ok_with_count_zero(connect: Connector):
    connection = await connect()
    channel = await connection.channel()
    underlay = await channel.get_underlay_channel()
    result = await underlay.queue_delete("never-declared")
    assert result.message_count == 0
    assert not channel.is_closed


# --- exchange types --------------------------------------------------------------------


async def test_direct_exchange_routes_by_exact_key(connect: Connector):
    connection = await connect()
    channel = await connection.channel()
    exchange = await channel.declare_exchange("d.x", ExchangeType.DIRECT)
    red = await channel.declare_queue("d.red")
    blue = await channel.declare_queue("d.blue")
    await red.bind(exchange, "red")
    await blue.bind(exchange, "blue")
    await blue.bind(exchange, "both")
    await red.bind(exchange, "both")
    for key in ("red", "blue", "both", "Red", "green", ""):
        await exchange.publish(Message(key.encode()), routing_key=key, mandatory=False)
    assert await drain(red) == [(b"red", False), (b"both", False)]
    assert await drain(blue) == [(b"blue", False), (b"both", False)]


async def test_fanout_exchange_ignores_routing_key(connect: Connector):
    connection = await connect()
    channel = await connection.channel()
    exchange = await channel.declare_exchange("f.x", ExchangeType.FANOUT)
    queues = [await channel.declare_queue(f"f.q{i}") for i in range(3)]
    for queue in queues:
        await queue.bind(exchange, "ignored")
    await exchange.publish(Message(b"one"), routing_key="anything")
    await exchange.publish(Message(b"two"), routing_key="")
    for queue in queues:
        assert await drain(queue) == [(b"one", False), (b"two", False)]


TOPIC_KEYS = ["", "a", "a.b", "a.b.c", "a..c", "a.c", ".", "a.b.b.c", "c", "x.y", "A.b"]
TOPIC_TABLE = [
    ("#", set(TOPIC_KEYS)),
    ("*.#", set(TOPIC_KEYS) - {""}),
    ("a.#", {"a", "a.b", "a.b.c", "a..c", "a.c", "a.b.b.c"}),
    ("#.c", {"a.b.c", "a..c", "a.c", "a.b.b.c", "c"}),
    ("#.b.#", {"a.b", "a.b.c", "a.b.b.c", "A.b"}),
    ("a.*.c", {"a.b.c", "a..c"}),
    ("a.#.c", {"a.b.c", "a..c", "a.c", "a.b.b.c"}),
    ("a.*.#", {"a.b", "a.b.c", "a..c", "a.c", "a.b.b.c"}),
    ("*", {"a", "c"}),
    ("*.*", {"a.b", "a.c", ".", "x.y", "A.b"}),
    ("", {""}),
    ("a..c", {"a..c"}),
]


async def test_topic_exchange_routes_like_rabbitmq(connect: Connector):
    connection = await connect()
    channel = await connection.channel()
    exchange = await channel.declare_exchange("t.x", ExchangeType.TOPIC)
    queues = []
    for index, (binding, _) in enumerate(TOPIC_TABLE):
        queue = await channel.declare_queue(f"t.q{index}")
        await queue.bind(exchange, binding)
        queues.append(queue)
    for key in TOPIC_KEYS:
        await exchange.publish(Message(key.encode()), routing_key=key)
    for queue, (binding, expected) in zip(queues, TOPIC_TABLE, strict=True):
        got = [body.decode() for body, _ in await drain(queue)]
        assert sorted(got) == sorted(expected), f"binding key {binding!r}"
        assert got == [k for k in TOPIC_KEYS if k in expected], "publish order kept"


HEADER_BINDINGS: dict[str, dict[str, Any]] = {
    "all": {"x-match": "all", "a": 1, "b": "two"},
    "any": {"x-match": "any", "a": 1, "b": "two"},
    "implicit-all": {"a": 1},
    "no-args": {},
    "any-x-only": {"x-match": "any", "x-foo": 1},
    "all-x-only": {"x-match": "all", "x-foo": 1},
    "all-with-x": {"x-match": "all-with-x", "x-foo": 1},
}
HEADER_MESSAGES: list[tuple[str, dict[str, Any] | None, set[str]]] = [
    ("both", {"a": 1, "b": "two"},
     {"all", "any", "implicit-all", "no-args", "all-x-only"}),
    ("a-only", {"a": 1}, {"any", "implicit-all", "no-args", "all-x-only"}),
    ("b-and-extra", {"b": "two", "c": 3}, {"any", "no-args", "all-x-only"}),
    ("none", None, {"no-args", "all-x-only"}),
    ("string-one", {"a": "1"}, {"no-args", "all-x-only"}),
    ("with-x", {"x-foo": 1, "a": 1, "b": "two"},
     {"all", "any", "implicit-all", "no-args", "all-x-only", "all-with-x"}),
]


async def test_headers_exchange_matches_like_rabbitmq(connect: Connector):
    connection = await connect()
    channel = await connection.channel()
    exchange = await channel.declare_exchange("h.x", ExchangeType.HEADERS)
    queues = {}
    for name, arguments in HEADER_BINDINGS.items():
        queue = await channel.declare_queue(f"h.{name}")
        await queue.bind(exchange, "", arguments=arguments)
        queues[name] = queue
    for body, headers, _ in HEADER_MESSAGES:
        await exchange.publish(Message(body.encode(), headers=headers), routing_key="ignored")
    for name, queue in queues.items():
        got = {body.decode() for body, _ in await drain(queue)}
        expected = {body for body, _, matches in HEADER_MESSAGES if name in matches}
        assert got == expected, f"binding {name}: {HEADER_BINDINGS[name]}"


async def test_exchange_to_exchange_bindings_follow_chains(connect: Connector):
    connection = await connect()
    channel = await connection.channel()
    source = await channel.declare_exchange("e2e.src", ExchangeType.TOPIC)
    middle = await channel.declare_exchange("e2e.mid", ExchangeType.DIRECT)
    queue = await channel.declare_queue("e2e.q")
    await middle.bind(source, "a.*")
    await queue.bind(middle, "a.x")
    for key in ("a.x", "a.y", "b.x"):
        await source.publish(Message(key.encode()), routing_key=key)
    assert await drain(queue) == [(b"a.x", False)]

    await middle.unbind(source, "a.*")
    await source.publish(Message(b"after-unbind"), routing_key="a.x", mandatory=False)
    await middle.publish(Message(b"direct"), routing_key="a.x")
    assert await drain(queue) == [(b"direct", False)]


async def test_exchange_binding_cycle_delivers_one_copy(connect: Connector):
    connection = await connect()
    channel = await connection.channel()
    x1 = await channel.declare_exchange("cyc.1", ExchangeType.FANOUT)
    x2 = await channel.declare_exchange("cyc.2", ExchangeType.FANOUT)
    await x2.bind(x1)  # x1 -> x2
    await x1.bind(x2)  # x2 -> x1
    queue = await channel.declare_queue("cyc.q")
    await queue.bind(x1)
    await queue.bind(x2)
    await x1.publish(Message(b"via-1"), routing_key="")
    await x2.publish(Message(b"via-2"), routing_key="")
    assert await drain(queue) == [(b"via-1", False), (b"via-2", False)]


async def test_alternate_exchange_takes_unroutable_messages(connect: Connector):
    connection = await connect()
    channel = await connection.channel(on_return_raises=True)
    alternate = await channel.declare_exchange("ae", ExchangeType.FANOUT)
    main = await channel.declare_exchange(
        "with-ae", ExchangeType.DIRECT, arguments={"alternate-exchange": "ae"})
    routed = await channel.declare_queue("ae.routed")
    caught = await channel.declare_queue("ae.caught")
    await routed.bind(main, "known")
    await caught.bind(alternate)
    await main.publish(Message(b"k"), routing_key="known")
    # mandatory, but the alternate exchange routes it: no Basic.Return, an ack.
    confirmation = await main.publish(Message(b"u"), routing_key="unknown", mandatory=True)
    assert isinstance(confirmation, Basic.Ack)
    assert await drain(routed) == [(b"k", False)]
    assert await drain(caught) == [(b"u", False)]


async def test_default_exchange_routes_to_queue_by_name(connect: Connector):
    connection = await connect()
    channel = await connection.channel()
    queue = await channel.declare_queue("by-name")
    await channel.default_exchange.publish(Message(b"hello"), routing_key="by-name")
    confirmation = await channel.default_exchange.publish(
        Message(b"x"), routing_key="no-q", mandatory=False)
    assert isinstance(confirmation, Basic.Ack)
    message = await queue.get(no_ack=True)
    assert (message.body, message.exchange, message.routing_key) == (b"hello", "", "by-name")

    probe = await connection.channel()
    with pytest.raises(ChannelAccessRefused) as info:
        await (await probe.get_underlay_channel()).queue_bind("by-name", "", "by-name")
    assert info.value.args[0] == \
        "ACCESS_REFUSED - operation not permitted on the default exchange"


# --- names -----------------------------------------------------------------------------


async def test_server_named_queue(connect_plain: Connector):
    # connect_robust names "" queues on the client side, so only the plain client asks
    # the server for a name.
    connection = await connect_plain()
    channel = await connection.channel()
    queue = await channel.declare_queue("", exclusive=True)
    assert re.fullmatch(r"amq\.gen-[A-Za-z0-9_-]{22}", queue.name), queue.name
    other = await channel.declare_queue("", exclusive=True)
    assert other.name != queue.name
    await channel.default_exchange.publish(Message(b"to-gen"), routing_key=queue.name)
    assert await drain(queue) == [(b"to-gen", False)]


async def test_server_generated_consumer_tag(connect: Connector):
    # aiormq always names its consumers, so ask the broker for a tag with a raw
    # Basic.Consume carrying an empty consumer_tag.
    connection = await connect()
    channel = await connection.channel()
    await channel.declare_queue("tagged")
    underlay = await channel.get_underlay_channel()
    tags = set()
    for _ in range(2):
        ok = await underlay.rpc(Basic.Consume(queue="tagged", consumer_tag=""))
        assert isinstance(ok, Basic.ConsumeOk)
        tags.add(ok.consumer_tag)
    assert len(tags) == 2
    for tag in tags:
        assert re.fullmatch(r"amq\.ctag-[A-Za-z0-9_-]{22}", tag), tag
    assert (await passive(channel, "tagged")).consumer_count == 2
    for tag in tags:
        cancel_ok = await underlay.rpc(Basic.Cancel(consumer_tag=tag))
        assert cancel_ok.consumer_tag == tag
    assert (await passive(channel, "tagged")).consumer_count == 0


# --- consumers and qos -----------------------------------------------------------------


async def test_three_consumers_share_messages_round_robin(connect: Connector):
    connection = await connect()
    channel = await connection.channel()
    queue = await channel.declare_queue("rr")
    collectors = [Collector() for _ in range(3)]
    for collector in collectors:
        await queue.consume(collector, no_ack=True)
    publisher = await connection.channel()
    await publish_all(publisher, "rr", numbered(30))
    await async_wait_for(lambda: sum(len(c.messages) for c in collectors) >= 30,
                         what="30 deliveries")
    seen = []
    for collector in collectors:
        numbers = [int(body) for body in collector.bodies]
        assert len(numbers) == 10, [c.bodies for c in collectors]
        assert numbers == sorted(numbers)
        seen += numbers
    assert sorted(seen) == list(range(30))


async def test_prefetch_count_limits_unacked_deliveries(connect: Connector):
    connection = await connect()
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=2)
    queue = await channel.declare_queue("prefetch")
    got = Collector()
    await queue.consume(got)
    publisher = await connection.channel()
    await publish_all(publisher, "prefetch", numbered(5))

    await got.wait(2)
    # The broker still holds 3 ready messages: it sent no third delivery.
    assert await ready_count(connection, "prefetch") == 3
    assert got.bodies == [b"0", b"1"]

    await got.messages[0].ack()
    await got.wait(3)
    assert await ready_count(connection, "prefetch") == 2
    assert got.bodies == [b"0", b"1", b"2"]

    await got.messages[2].ack(multiple=True)
    await got.wait(5)
    assert got.bodies == numbered(5)
    assert await ready_count(connection, "prefetch") == 0


async def test_global_qos_limits_the_whole_channel(connect: Connector):
    connection = await connect()
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=2, global_=True)
    got = Collector()
    for name in ("gq.1", "gq.2"):
        queue = await channel.declare_queue(name)
        await queue.consume(got)
    publisher = await connection.channel()
    await publish_all(publisher, "gq.1", numbered(3))
    await publish_all(publisher, "gq.2", numbered(3))

    await got.wait(2)
    ready = await ready_count(connection, "gq.1") + await ready_count(connection, "gq.2")
    assert ready == 4
    assert len(got.messages) == 2

    await got.messages[0].ack()
    await got.wait(3)
    ready = await ready_count(connection, "gq.1") + await ready_count(connection, "gq.2")
    assert ready == 3
    assert len(got.messages) == 3


async def test_per_consumer_qos_applies_to_consumers_created_after_it(connect_plain: Connector):
    connection = await connect_plain()
    channel = await connection.channel()
    early_queue = await channel.declare_queue("qos.early")
    late_queue = await channel.declare_queue("qos.late")
    early, late = Collector(), Collector()
    await early_queue.consume(early)
    await channel.set_qos(prefetch_count=1)
    await late_queue.consume(late)
    publisher = await connection.channel()
    await publish_all(publisher, "qos.early", numbered(3))
    await publish_all(publisher, "qos.late", numbered(3))
    await early.wait(3)
    await late.wait(1)
    assert await ready_count(connection, "qos.late") == 2
    assert len(late.messages) == 1


async def test_exclusive_consumer_refuses_other_consumers(connect: Connector):
    connection = await connect()
    channel = await connection.channel()
    queue = await channel.declare_queue("excl.consumer")
    await queue.consume(Collector(), exclusive=True)
    other = await connection.channel()
    with pytest.raises(ChannelAccessRefused) as info:
        await (await other.get_underlay_channel()).basic_consume(
            "excl.consumer", lambda message: None)
    assert info.value.args[0] == \
        "ACCESS_REFUSED - queue 'excl.consumer' in vhost '/' in exclusive use"
    assert not channel.is_closed


# --- requeue ---------------------------------------------------------------------------


async def test_unacked_messages_requeued_on_channel_close(connect: Connector):
    connection = await connect()
    consumer_channel = await connection.channel()
    queue = await consumer_channel.declare_queue("req.ch")
    publisher = await connection.channel()
    await publish_all(publisher, "req.ch", numbered(5))
    got = Collector()
    await queue.consume(got)
    await got.wait(5)
    assert not any(m.redelivered for m in got.messages)
    await got.messages[1].ack()
    await got.messages[3].ack()
    await consumer_channel.close()

    again = await publisher.get_queue("req.ch", ensure=False)
    assert await drain(again) == [(b"0", True), (b"2", True), (b"4", True)]


async def test_unacked_messages_requeued_on_connection_close(connect: Connector):
    consumer_connection = await connect()
    other = await connect()
    publisher = await other.channel()
    queue = await publisher.declare_queue("req.conn")
    await publish_all(publisher, "req.conn", numbered(6))

    channel = await consumer_connection.channel()
    await channel.set_qos(prefetch_count=3)
    got = Collector()
    await (await channel.get_queue("req.conn", ensure=False)).consume(got)
    await got.wait(3)
    await got.messages[1].ack()
    await got.wait(4)
    assert got.bodies == numbered(4)
    await consumer_connection.close()

    assert await drain(queue) == [
        (b"0", True), (b"2", True), (b"3", True), (b"4", False), (b"5", False)]


async def test_nack_and_reject_with_and_without_requeue(connect: Connector):
    connection = await connect()
    channel = await connection.channel()
    queue = await channel.declare_queue("nack")
    await publish_all(channel, "nack", numbered(7))
    m0, m1, m2, m3 = [await queue.get() for _ in range(4)]
    await m2.nack(requeue=True)
    await m0.reject(requeue=True)
    await m1.reject(requeue=False)
    await m3.nack(requeue=False)
    # Requeued messages go back to their original position, marked redelivered.
    assert await drain(queue) == [
        (b"0", True), (b"2", True), (b"4", False), (b"5", False), (b"6", False)]


async def test_nack_multiple_requeues_all_up_to_the_tag(connect: Connector):
    connection = await connect()
    channel = await connection.channel()
    queue = await channel.declare_queue("nack.multi")
    await publish_all(channel, "nack.multi", numbered(4))
    messages = [await queue.get() for _ in range(3)]
    await messages[1].nack(multiple=True, requeue=True)
    assert await drain(queue) == [(b"0", True), (b"1", True), (b"3", False)]
    await messages[2].ack()
    assert await ready_count(connection, "nack.multi") == 0


async def test_purge_leaves_unacked_messages_alone(connect: Connector):
    connection = await connect()
    channel = await connection.channel()
    queue = await channel.declare_queue("purge.unacked")
    await publish_all(channel, "purge.unacked", numbered(3))
    held = await queue.get()
    assert held.body == b"0"
    assert (await queue.purge()).message_count == 2
    await held.nack(requeue=True)
    assert await drain(queue) == [(b"0", True)]


async def test_basic_get_message_count_and_get_empty(connect: Connector):
    connection = await connect()
    channel = await connection.channel()
    queue = await channel.declare_queue("get")
    with pytest.raises(QueueEmpty):
        await queue.get()
    await publish_all(channel, "get", numbered(3))
    counts = []
    for expected in numbered(3):
        message = await queue.get(no_ack=True)
        assert message.body == expected
        counts.append(message.message_count)
    assert counts == [2, 1, 0]
    assert await queue.get(fail=False) is None
    assert not channel.is_closed


async def test_recover_redelivers_unacked_with_new_tags(connect: Connector):
    connection = await connect()
    channel = await connection.channel()
    queue = await channel.declare_queue("recover")
    underlay = await channel.get_underlay_channel()
    await publish_all(channel, "recover", numbered(3))
    first = [await queue.get() for _ in range(2)]
    assert [m.delivery_tag for m in first] == [1, 2]
    await underlay.basic_recover(requeue=True)
    again = [await queue.get() for _ in range(3)]
    assert [(m.body, m.redelivered, m.delivery_tag) for m in again] == [
        (b"0", True, 3), (b"1", True, 4), (b"2", False, 5)]
    await again[-1].ack(multiple=True)

    got = Collector()
    await queue.consume(got)
    await publish_all(channel, "recover", numbered(2, start=10))
    await got.wait(2)
    assert [(m.body, m.redelivered, m.delivery_tag) for m in got.messages] == [
        (b"10", False, 6), (b"11", False, 7)]
    await underlay.basic_recover(requeue=True)
    await got.wait(4)
    assert [(m.body, m.redelivered, m.delivery_tag) for m in got.messages[2:]] == [
        (b"10", True, 8), (b"11", True, 9)]


# --- publisher confirms, returns, transactions -----------------------------------------


async def test_many_publishes_are_all_confirmed(connect: Connector):
    connection = await connect()
    channel = await connection.channel(publisher_confirms=True)
    queue = await channel.declare_queue("confirms")
    results = await asyncio.wait_for(asyncio.gather(*(
        channel.default_exchange.publish(Message(body), routing_key="confirms")
        for body in numbered(1000))), 10)
    assert all(isinstance(result, Basic.Ack) for result in results)
    assert await ready_count(connection, "confirms") == 1000
    first = await queue.get(no_ack=True)
    assert first.body == b"0"
    # Unroutable without mandatory: silently dropped, still acked.
    dropped = await channel.default_exchange.publish(
        Message(b"x"), routing_key="nowhere", mandatory=False)
    assert isinstance(dropped, Basic.Ack)


async def test_mandatory_unroutable_raises_delivery_error(connect: Connector):
    connection = await connect()
    channel = await connection.channel(on_return_raises=True)
    exchange = await channel.declare_exchange("unbound.x", ExchangeType.DIRECT)
    with pytest.raises(DeliveryError) as info:
        await exchange.publish(Message(b"lost"), routing_key="rk", mandatory=True)
    frame = info.value.frame
    assert isinstance(frame, Basic.Return)
    assert (frame.reply_code, frame.reply_text, frame.exchange, frame.routing_key) == (
        312, "NO_ROUTE", "unbound.x", "rk")
    assert info.value.message.body == b"lost"
    # A routable mandatory publish is just acked.
    queue = await channel.declare_queue("bound.q")
    await queue.bind(exchange, "rk")
    assert isinstance(
        await exchange.publish(Message(b"ok"), routing_key="rk", mandatory=True), Basic.Ack)


async def test_mandatory_unroutable_reaches_on_return_callback(connect: Connector):
    connection = await connect()
    channel = await connection.channel(on_return_raises=False)
    returned: asyncio.Future[AbstractIncomingMessage] = \
        asyncio.get_running_loop().create_future()

    def on_return(_sender: Any, message: AbstractIncomingMessage) -> None:
        if not returned.done():
            returned.set_result(message)

    channel.return_callbacks.add(on_return)
    await channel.default_exchange.publish(
        Message(b"back", headers={"h": "v"}), routing_key="no-such-queue", mandatory=True)
    message = await asyncio.wait_for(returned, 5)
    assert message.body == b"back"
    assert message.routing_key == "no-such-queue"
    assert message.exchange == ""
    assert message.headers == {"h": "v"}


async def test_tx_publish_invisible_until_commit_and_dropped_on_rollback(connect: Connector):
    connection = await connect()
    channel = await connection.channel(publisher_confirms=False)
    queue = await channel.declare_queue("tx.pub")
    tx = channel.transaction()
    await tx.select()
    await publish_all(channel, "tx.pub", [b"a", b"b"])
    assert await ready_count(connection, "tx.pub") == 0
    await tx.commit()
    assert await ready_count(connection, "tx.pub") == 2

    await publish_all(channel, "tx.pub", [b"c"])
    await tx.rollback()
    assert await ready_count(connection, "tx.pub") == 2
    await tx.commit()
    assert await drain(queue) == [(b"a", False), (b"b", False)]


async def test_tx_ack_takes_effect_at_commit(connect: Connector):
    connection = await connect()
    setup = await connection.channel()
    await setup.declare_queue("tx.ack")
    await publish_all(setup, "tx.ack", [b"m"])

    # Ack inside a transaction, then roll back: the ack is dropped, the message stays
    # unacked and comes back when the channel closes.
    channel = await connection.channel(publisher_confirms=False)
    queue = await channel.get_queue("tx.ack", ensure=False)
    tx = channel.transaction()
    await tx.select()
    message = await queue.get()
    await message.ack()
    await tx.rollback()
    await channel.close()
    assert await ready_count(connection, "tx.ack") == 1

    # Ack inside a transaction, then commit: the message is gone for good.
    channel = await connection.channel(publisher_confirms=False)
    queue = await channel.get_queue("tx.ack", ensure=False)
    tx = channel.transaction()
    await tx.select()
    message = await queue.get()
    assert message.redelivered
    await message.ack()
    assert await ready_count(connection, "tx.ack") == 0  # unacked, not ready
    await tx.commit()
    await channel.close()
    assert await ready_count(connection, "tx.ack") == 0


# --- exclusive and auto-delete queues, server-side cancel ------------------------------


async def test_exclusive_queue_is_locked_for_other_connections(connect: Connector):
    owner = await connect()
    other = await connect()
    owner_channel = await owner.channel()
    queue = await owner_channel.declare_queue("excl", exclusive=True)

    attempts = {
        "declare": lambda ch: ch.queue_declare("excl", exclusive=True),
        "declare-non-exclusive": lambda ch: ch.queue_declare("excl"),
        "passive": lambda ch: ch.queue_declare("excl", passive=True),
        "get": lambda ch: ch.basic_get("excl"),
        "consume": lambda ch: ch.basic_consume("excl", lambda message: None),
        "purge": lambda ch: ch.queue_purge("excl"),
        "delete": lambda ch: ch.queue_delete("excl"),
        "bind": lambda ch: ch.queue_bind("excl", "amq.direct", "k"),
    }
    for name, attempt in attempts.items():
        channel = await other.channel()
        underlay = await channel.get_underlay_channel()
        with pytest.raises(ChannelLockedResource) as info:
            await attempt(underlay)
        assert info.value.args[0] == LOCKED.format("excl"), name

    # Publishing to it through the default exchange is allowed (and confirmed).
    channel = await other.channel()
    confirmation = await channel.default_exchange.publish(Message(b"hi"), routing_key="excl")
    assert isinstance(confirmation, Basic.Ack)
    assert await drain(queue) == [(b"hi", False)]


async def test_exclusive_queue_deleted_when_owner_connection_closes(connect: Connector):
    owner = await connect()
    other = await connect()
    channel = await owner.channel()
    await channel.declare_queue("excl.gone", exclusive=True)
    assert not await queue_gone(owner, "excl.gone")
    await owner.close()
    await async_wait_for(lambda: queue_gone(other, "excl.gone"),
                         what="the exclusive queue to be deleted")
    # The name is free again, for anyone.
    channel = await other.channel()
    queue = await channel.declare_queue("excl.gone", exclusive=True)
    assert queue.declaration_result.message_count == 0


async def test_auto_delete_queue_deleted_after_last_consumer_cancels(connect: Connector):
    connection = await connect()
    channel = await connection.channel()
    queue = await channel.declare_queue("autodel", auto_delete=True)
    # Kept until it has had a consumer.
    assert not await queue_gone(connection, "autodel")
    first = await queue.consume(Collector())
    second = await queue.consume(Collector())
    await queue.cancel(first)
    ok = await passive(channel, "autodel")
    assert ok.consumer_count == 1
    await queue.cancel(second)
    assert await queue_gone(connection, "autodel")


async def test_auto_delete_exchange_deleted_with_its_last_binding(connect: Connector):
    connection = await connect()
    channel = await connection.channel()
    exchange = await channel.declare_exchange("autodel.x", ExchangeType.FANOUT,
                                              auto_delete=True)
    queue = await channel.declare_queue("autodel.xq")
    underlay = await channel.get_underlay_channel()
    await underlay.exchange_declare("autodel.x", passive=True)  # not deleted before a bind
    await queue.bind(exchange)
    await queue.unbind(exchange)
    probe = await connection.channel()
    with pytest.raises(ChannelNotFoundEntity) as info:
        await (await probe.get_underlay_channel()).exchange_declare("autodel.x", passive=True)
    assert info.value.args[0] == "NOT_FOUND - no exchange 'autodel.x' in vhost '/'"


async def test_queue_delete_cancels_its_consumers(connect_plain: Connector):
    # Plain connection only: connect_robust reconnects when the broker cancels a consumer.
    connection = await connect_plain()
    channel = await connection.channel()
    queue = await channel.declare_queue("doomed")
    cancelled: asyncio.Future[Basic.Cancel] = asyncio.get_running_loop().create_future()
    underlay = await channel.get_underlay_channel()
    underlay.on_consumer_cancel_callbacks.add(
        lambda frame: cancelled.done() or cancelled.set_result(frame))
    tag = await queue.consume(Collector())

    other = await connection.channel()
    deleted = await (await other.get_underlay_channel()).queue_delete("doomed")
    assert deleted.message_count == 0
    frame = await asyncio.wait_for(cancelled, 5)
    assert isinstance(frame, Basic.Cancel)
    assert frame.consumer_tag == tag
    # The consumer's channel stays open and usable.
    assert not channel.is_closed
    assert (await channel.declare_queue("after-cancel")).name == "after-cancel"


# --- message content -------------------------------------------------------------------


PROPERTIES: dict[str, Any] = {
    "content_type": "application/json",
    "content_encoding": "utf-8",
    "delivery_mode": DeliveryMode.PERSISTENT,
    "priority": 7,
    "correlation_id": "corr-42",
    "reply_to": "replies",
    "message_id": "message-1",
    "timestamp": datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.UTC),
    "type": "order.created",
    "user_id": "guest",
    "app_id": "integration-tests",
}
HEADERS: dict[str, Any] = {
    "string": "text é",
    "int": 42,
    "negative": -7,
    "long": 2**40,
    "float": 1.5,
    "bool": True,
    "list": [1, "two", {"three": 3}],
    "nested": {"inner": {"deep": "value", "n": 1}, "flag": False},
}


def assert_properties(message: AbstractIncomingMessage) -> None:
    assert message.content_type == PROPERTIES["content_type"]
    assert message.content_encoding == PROPERTIES["content_encoding"]
    assert message.delivery_mode == DeliveryMode.PERSISTENT
    assert message.priority == 7
    assert message.correlation_id == "corr-42"
    assert message.reply_to == "replies"
    assert message.message_id == "message-1"
    assert message.timestamp is not None
    assert message.timestamp.timestamp() == PROPERTIES["timestamp"].timestamp()
    assert message.type == "order.created"
    assert message.user_id == "guest"
    assert message.app_id == "integration-tests"
    assert message.expiration is None
    assert message.headers == HEADERS


async def test_properties_and_headers_delivered_unchanged(connect: Connector):
    connection = await connect()
    channel = await connection.channel()
    queue = await channel.declare_queue("props")
    for _ in range(2):
        await channel.default_exchange.publish(
            Message(b"{}", headers=HEADERS, **PROPERTIES), routing_key="props")
    assert_properties(await queue.get(no_ack=True))
    got = Collector()
    await queue.consume(got, no_ack=True)
    await got.wait(1)
    assert_properties(got.messages[0])
    assert got.messages[0].body == b"{}"


@pytest.mark.parametrize("size", [1024 * 1024, 1024 * 1024 + 7])
async def test_large_bodies_cross_many_frames(connect: Connector, size: int):
    connection = await connect()
    channel = await connection.channel()
    queue = await channel.declare_queue("large")
    body = os.urandom(size)
    for _ in range(2):
        await channel.default_exchange.publish(Message(body), routing_key="large")
    fetched = await queue.get(no_ack=True)
    assert len(fetched.body) == size
    assert fetched.body == body
    got = Collector()
    await queue.consume(got, no_ack=True)
    await got.wait(1)
    assert got.messages[0].body == body


async def test_backlog_of_large_messages_reaches_a_consumer(connect: Connector):
    # 16 MiB queued before the consumer starts: more than the broker buffers for one
    # connection at once, so delivery must resume as the socket drains.
    connection = await connect()
    channel = await connection.channel()
    queue = await channel.declare_queue("backlog")
    bodies = [bytes([i]) * (1024 * 1024) for i in range(16)]
    for body in bodies:
        await channel.default_exchange.publish(Message(body), routing_key="backlog")
    got = Collector()
    await queue.consume(got, no_ack=True)
    await got.wait(16)
    assert got.bodies == bodies


async def test_empty_body(connect: Connector):
    connection = await connect()
    channel = await connection.channel()
    queue = await channel.declare_queue("empty")
    for _ in range(2):
        await channel.default_exchange.publish(
            Message(b"", content_type="text/plain"), routing_key="empty")
    fetched = await queue.get(no_ack=True)
    assert (fetched.body, fetched.content_type) == (b"", "text/plain")
    got = Collector()
    await queue.consume(got, no_ack=True)
    await got.wait(1)
    assert (got.messages[0].body, got.messages[0].content_type) == (b"", "text/plain")
