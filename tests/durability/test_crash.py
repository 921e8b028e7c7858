"""SIGKILL at different moments: whatever the broker confirmed (publisher confirm,
declare-ok, bind-ok) is there after a restart on the same data directory, in order and
exactly once; whatever it did not confirm may or may not be."""

from __future__ import annotations

import itertools
import time
from collections import Counter

import pika
import pytest
from durability_support import (
    CLIENT_TIMEOUT,
    CONNECTION_LOST,
    BrokerProcess,
    Drained,
    Killer,
    body_of,
    connect,
    drain,
    exchange_exists,
    publish_persistent,
    queue_exists,
    seq_of,
)

QUEUE = "crash.durable"
STREAM_TARGET = 20_000  # never reached: the broker dies first


def check_recovered(drained: Drained, attempted: set[int], required: set[int]) -> None:
    """Everything `required` is there exactly once, in publish order, marked redelivered;
    nothing outside `attempted`."""
    seqs = drained.seqs
    assert drained.left == 0, f"{drained.left} messages left after the drain"
    twice = sorted(seq for seq, n in Counter(seqs).items() if n > 1)
    assert not twice, f"{len(twice)} messages came back more than once, e.g. {twice[:10]}"
    unknown = sorted(set(seqs) - attempted)
    assert not unknown, f"{len(unknown)} messages never published came back: {unknown[:10]}"
    missing = sorted(required - set(seqs))
    assert not missing, (f"{len(missing)} of {len(required)} messages that had to survive are "
                         f"lost, e.g. {missing[:10]}")
    out_of_order = [(a, b) for a, b in itertools.pairwise(seqs) if a >= b]
    assert not out_of_order, f"not in publish order, e.g. {out_of_order[:5]}"
    fresh = [seq for seq, redelivered in zip(seqs, drained.redelivered, strict=True)
             if not redelivered]
    assert not fresh, f"{len(fresh)} recovered messages not marked redelivered: {fresh[:10]}"


@pytest.mark.parametrize("count", [200, 1000], ids=lambda n: f"{n}-confirmed")
def test_kill_after_confirms_keeps_every_confirmed_message(broker: BrokerProcess,
                                                           count: int) -> None:
    broker.start()
    result = publish_persistent(broker, QUEUE, count)
    assert not result.failed and not result.nacked
    assert result.confirmed == set(range(count))

    broker.restart("kill")

    check_recovered(drain(broker, QUEUE), set(result.attempted), result.confirmed)


@pytest.mark.parametrize("kill_at", [1, 200, 1000], ids=lambda n: f"at-{n}-confirms")
def test_kill_mid_stream_keeps_every_confirmed_message(broker: BrokerProcess,
                                                       kill_at: int) -> None:
    """The broker is SIGKILLed from another thread once `kill_at` confirms arrived, while
    the publisher keeps ~100 publishes outstanding."""
    broker.start()
    killer = Killer(broker)

    def on_confirm(confirmed: int) -> None:
        if confirmed >= kill_at:
            killer.trigger.set()

    try:
        result = publish_persistent(broker, QUEUE, STREAM_TARGET, on_confirm=on_confirm)
    finally:
        killer.join()
    assert killer.killed.is_set()
    assert len(result.attempted) < STREAM_TARGET, "the broker outlived the publisher"
    assert not result.nacked
    assert len(result.confirmed) >= kill_at

    broker.kill()
    broker.start()

    check_recovered(drain(broker, QUEUE), set(result.attempted), result.confirmed)


def test_kill_while_declaring_keeps_every_declare_ok(broker: BrokerProcess) -> None:
    """Durable exchanges, queues and bindings declared one after the other; the broker is
    SIGKILLed mid-way. Everything whose -ok arrived exists after the restart."""
    kill_at, target = 240, 2000
    broker.start()
    killer = Killer(broker)
    exchanges: list[str] = []
    queues: list[str] = []
    bindings: list[tuple[str, str]] = []
    connection = connect(broker)
    try:
        channel = connection.channel()
        for i in range(target):
            channel.exchange_declare(f"crash.x{i}", "direct", durable=True)
            exchanges.append(f"crash.x{i}")
            channel.queue_declare(f"crash.q{i}", durable=True)
            queues.append(f"crash.q{i}")
            channel.queue_bind(f"crash.q{i}", f"crash.x{i}", routing_key="k")
            bindings.append((f"crash.x{i}", f"crash.q{i}"))
            if len(exchanges) + len(queues) + len(bindings) >= kill_at:
                killer.trigger.set()
    except CONNECTION_LOST:
        pass
    else:
        pytest.fail(f"{target} declares went through: the broker outlived them")
    finally:
        killer.join()
    assert killer.killed.is_set()
    assert len(exchanges) + len(queues) + len(bindings) >= kill_at

    broker.kill()
    broker.start()

    connection = connect(broker)
    try:
        missing_exchanges = [x for x in exchanges if not exchange_exists(connection.channel, x)]
        missing_queues = [q for q in queues if not queue_exists(connection.channel, q)]
        channel = connection.channel()
        channel.confirm_delivery()
        unrouted = []
        for exchange, queue in bindings:
            try:
                channel.basic_publish(exchange, "k", queue.encode(), mandatory=True)
            except pika.exceptions.UnroutableError:
                unrouted.append((exchange, queue))
        without_message = [q for _, q in bindings
                           if channel.queue_declare(q, passive=True).method.message_count != 1]
    finally:
        connection.close()
    assert not missing_exchanges, f"declare-ok'd exchanges lost: {missing_exchanges}"
    assert not missing_queues, f"declare-ok'd queues lost: {missing_queues}"
    assert not unrouted, f"bind-ok'd bindings lost: {unrouted}"
    assert not without_message, f"queues without the message routed to them: {without_message}"


def test_kill_while_acking_loses_nothing_unacked(broker: BrokerProcess) -> None:
    """Consume with manual acks, one ack per message; SIGKILL from another thread after 300
    acks while acking goes on. Every message not acked comes back, exactly once, in order;
    an acked one may come back, marked redelivered."""
    count, kill_at = 600, 300
    broker.start()
    published = publish_persistent(broker, QUEUE, count)
    assert published.confirmed == set(range(count))

    killer = Killer(broker)
    acked: set[int] = set()
    connection = connect(broker)

    def on_message(channel: pika.adapters.blocking_connection.BlockingChannel,
                   method: pika.spec.Basic.Deliver, _props: pika.BasicProperties,
                   body: bytes) -> None:
        channel.basic_ack(method.delivery_tag)
        acked.add(seq_of(body))
        if len(acked) >= kill_at:
            killer.trigger.set()

    try:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=50)
        channel.basic_consume(QUEUE, on_message)
        deadline = time.monotonic() + CLIENT_TIMEOUT
        while time.monotonic() < deadline:
            connection.process_data_events(time_limit=0.05)
    except CONNECTION_LOST:
        pass
    else:
        pytest.fail(f"still consuming after {CLIENT_TIMEOUT}s ({len(acked)} acked)")
    finally:
        killer.join()
    assert killer.killed.is_set()
    assert kill_at <= len(acked) < count

    broker.kill()
    broker.start()

    drained = drain(broker, QUEUE)
    check_recovered(drained, set(range(count)), set(range(count)) - acked)


def test_kill_after_tx_commit_ok_keeps_the_committed_publishes(broker: BrokerProcess) -> None:
    """Tx.Commit-Ok promises the publishes of the transaction; an uncommitted transaction
    leaves nothing behind."""
    broker.start()
    connection = connect(broker)
    channel = connection.channel()
    channel.queue_declare(QUEUE, durable=True)
    channel.tx_select()
    persistent = pika.BasicProperties(delivery_mode=2)
    for seq in range(50):
        channel.basic_publish("", QUEUE, body_of(seq), persistent)
    channel.tx_commit()
    for seq in range(50, 100):
        channel.basic_publish("", QUEUE, body_of(seq), persistent)
    channel.queue_declare(QUEUE, passive=True)  # a round trip: the publishes arrived
    broker.kill()
    broker.start()

    check_recovered(drain(broker, QUEUE), set(range(50)), set(range(50)))


def test_kill_after_dead_lettering_keeps_each_message_exactly_once(
        broker: BrokerProcess) -> None:
    """Rejected (requeue=false) persistent messages move to a durable dead-letter queue:
    after a SIGKILL each is in one of the two queues, once."""
    broker.start()
    connection = connect(broker)
    channel = connection.channel()
    channel.queue_declare("crash.dead", durable=True)
    channel.queue_declare(QUEUE, durable=True, arguments={
        "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "crash.dead"})
    channel.confirm_delivery()
    for seq in range(10):
        channel.basic_publish("", QUEUE, body_of(seq),
                              pika.BasicProperties(delivery_mode=2))
    for _ in range(5):
        method, _props, _body = channel.basic_get(QUEUE)
        channel.basic_reject(method.delivery_tag, requeue=False)
    assert channel.queue_declare("crash.dead", passive=True).method.message_count == 5
    broker.kill()
    broker.start()

    check_recovered(drain(broker, QUEUE), set(range(5, 10)), set(range(5, 10)))
    check_recovered(drain(broker, "crash.dead"), set(range(5)), set(range(5)))


def test_late_ack_for_a_deleted_queue_spares_its_successor(broker: BrokerProcess) -> None:
    """A message fetched (unacked) from a durable queue that is then deleted and declared
    again: acking the old delivery must not remove the new queue's confirmed message."""
    broker.start()
    consumer = connect(broker)
    channel = consumer.channel()
    channel.queue_declare(QUEUE, durable=True)
    channel.confirm_delivery()
    persistent = pika.BasicProperties(delivery_mode=2)
    channel.basic_publish("", QUEUE, body_of(0), persistent)
    method, _props, _body = channel.basic_get(QUEUE)
    other = connect(broker)
    other_channel = other.channel()
    other_channel.queue_delete(QUEUE)
    other_channel.queue_declare(QUEUE, durable=True)
    other_channel.confirm_delivery()
    other_channel.basic_publish("", QUEUE, body_of(1), persistent)  # confirmed
    channel.basic_ack(method.delivery_tag)
    assert channel.queue_declare(QUEUE, passive=True).method.message_count == 1
    broker.kill()
    broker.start()

    check_recovered(drain(broker, QUEUE), {1}, {1})


def test_repeated_kills_mid_stream_accumulate(broker: BrokerProcess) -> None:
    """Three SIGKILLs mid-stream on the same data directory, each after the restart of the
    previous one: the messages published after a recovery go after the recovered ones and
    never replace them."""
    attempted: set[int] = set()
    confirmed: set[int] = set()
    broker.start()
    for cycle in range(3):
        killer = Killer(broker)

        def on_confirm(count: int, killer: Killer = killer) -> None:
            if count >= 150:
                killer.trigger.set()

        try:
            result = publish_persistent(broker, QUEUE, STREAM_TARGET, on_confirm=on_confirm,
                                        first=cycle * 100_000)
        finally:
            killer.join()
        assert killer.killed.is_set()
        attempted |= set(result.attempted)
        confirmed |= result.confirmed
        broker.kill()
        broker.start()

    check_recovered(drain(broker, QUEUE), attempted, confirmed)
