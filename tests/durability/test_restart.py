"""Restarts, graceful (SIGTERM) and not (SIGKILL): durable definitions and persistent
messages on durable queues come back; everything else is gone and never touched the disk."""

from __future__ import annotations

import contextlib
import sqlite3
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest
from durability_support import (
    BrokerProcess,
    connect,
    exchange_exists,
    queue_exists,
)
from support.processes import wait_for

from amqpbroker.store.messages import decode_message

PERSISTENT = pika.BasicProperties(delivery_mode=2)
TRANSIENT = pika.BasicProperties(delivery_mode=1)
RED_5 = {"x-match": "all", "color": "red", "size": 5}

DURABLE_EXCHANGES = ["r.direct", "r.fanout", "r.headers", "r.ae", "r.withae"]
GONE_EXCHANGES = ["r.transient", "r.deleted"]
DURABLE_QUEUES = ["r.q.direct", "r.q.e2e", "r.q.headers", "r.q.ae", "r.q.unbound",
                  "r.q.on-transient-x", "r.q.limited", "r.q.purged", "r.q.empty"]
GONE_QUEUES = ["r.q.transient", "r.q.exclusive", "r.q.deleted"]
# What the durable queues hold after any restart, in order.
EXPECTED_MESSAGES = {
    "r.q.direct": [b"persistent-0", b"persistent-2", b"persistent-4"],
    "r.q.e2e": [b"persistent-e2e"],
    "r.q.headers": [b"persistent-headers"],
    "r.q.ae": [b"persistent-ae"],
    "r.q.unbound": [],
    "r.q.on-transient-x": [b"persistent-direct-to-queue"],
    "r.q.limited": [b"persistent-limited-1", b"persistent-limited-2"],
    "r.q.purged": [],
    "r.q.empty": [],
}


def publish(channel: pika.adapters.blocking_connection.BlockingChannel, exchange: str,
            routing_key: str, body: bytes, properties: pika.BasicProperties = PERSISTENT,
            ) -> None:
    """Publish on a confirm channel, mandatory: returns once the broker confirmed it (for a
    persistent message on a durable queue: once it is on disk); fails when unroutable."""
    channel.basic_publish(exchange, routing_key, body, properties, mandatory=True)


def build_topology(channel: pika.adapters.blocking_connection.BlockingChannel) -> None:
    """Durable and non-durable exchanges, queues and bindings, and messages on them.
    `channel` must belong to a connection that stays open (it owns the exclusive queue)."""
    channel.confirm_delivery()
    channel.exchange_declare("r.direct", "direct", durable=True)
    channel.exchange_declare("r.fanout", "fanout", durable=True)
    channel.exchange_declare("r.headers", "headers", durable=True)
    channel.exchange_declare("r.ae", "fanout", durable=True)
    channel.exchange_declare("r.withae", "direct", durable=True,
                             arguments={"alternate-exchange": "r.ae"})
    channel.exchange_declare("r.transient", "direct", durable=False)
    channel.exchange_declare("r.deleted", "direct", durable=True)
    for name in DURABLE_QUEUES:
        arguments = {"x-max-length": 2} if name == "r.q.limited" else None
        channel.queue_declare(name, durable=True, arguments=arguments)
    channel.queue_declare("r.q.deleted", durable=True)
    channel.queue_declare("r.q.transient", durable=False)
    channel.queue_declare("r.q.exclusive", durable=True, exclusive=True)

    channel.queue_bind("r.q.direct", "r.direct", "k")
    channel.exchange_bind("r.fanout", "r.direct", "e2e")  # destination, source
    channel.queue_bind("r.q.e2e", "r.fanout", "")
    channel.queue_bind("r.q.headers", "r.headers", "", arguments=RED_5)
    channel.queue_bind("r.q.ae", "r.ae", "")
    channel.queue_bind("r.q.unbound", "r.direct", "gone")
    channel.queue_unbind("r.q.unbound", "r.direct", "gone")
    channel.queue_bind("r.q.transient", "r.direct", "k")
    channel.queue_bind("r.q.on-transient-x", "r.transient", "k")
    channel.queue_bind("r.q.exclusive", "r.direct", "k")
    channel.queue_bind("r.q.direct", "r.deleted", "k")
    channel.queue_bind("r.q.deleted", "r.direct", "k")

    for i in range(5):  # mixed persistent/transient on a durable queue (and others)
        properties = PERSISTENT if i % 2 == 0 else TRANSIENT
        kind = "persistent" if i % 2 == 0 else "transient"
        publish(channel, "r.direct", "k", f"{kind}-{i}".encode(), properties)
    publish(channel, "r.direct", "e2e", b"persistent-e2e")
    publish(channel, "r.headers", "", b"persistent-headers",
            pika.BasicProperties(delivery_mode=2, headers={"color": "red", "size": 5}))
    publish(channel, "r.withae", "nokey", b"persistent-ae")
    publish(channel, "", "r.q.on-transient-x", b"persistent-direct-to-queue")
    publish(channel, "", "r.q.transient", b"persistent-on-transient-queue")
    for i in range(3):  # x-max-length 2 drops the head
        publish(channel, "", "r.q.limited", f"persistent-limited-{i}".encode())
    for i in range(3):
        publish(channel, "", "r.q.purged", f"persistent-purged-{i}".encode())
    assert channel.queue_purge("r.q.purged").method.message_count == 3
    channel.exchange_delete("r.deleted")
    channel.queue_delete("r.q.deleted")


def snapshot(broker: BrokerProcess) -> dict[str, object]:
    """Which of the test's exchanges and queues exist, and the queues' message counts."""
    connection = connect(broker)
    try:
        state: dict[str, object] = {}
        for name in DURABLE_EXCHANGES + GONE_EXCHANGES:
            state[f"exchange {name}"] = exchange_exists(connection.channel, name)
        for name in DURABLE_QUEUES + GONE_QUEUES:
            channel = connection.channel()
            try:
                count = channel.queue_declare(name, passive=True).method.message_count
            except pika.exceptions.ChannelClosedByBroker as closed:
                assert closed.reply_code == 404, closed
                count = None
            else:
                channel.close()
            state[f"queue {name}"] = count
        return state
    finally:
        connection.close()


def expected_snapshot() -> dict[str, object]:
    state: dict[str, object] = {}
    for name in DURABLE_EXCHANGES:
        state[f"exchange {name}"] = True
    for name in GONE_EXCHANGES:
        state[f"exchange {name}"] = False
    for name in DURABLE_QUEUES:
        state[f"queue {name}"] = len(EXPECTED_MESSAGES[name])
    for name in GONE_QUEUES:
        state[f"queue {name}"] = None
    return state


def get_all(channel: pika.adapters.blocking_connection.BlockingChannel,
            queue: str) -> list[tuple[bytes, bool, int | None]]:
    """basic.get (with ack) until the queue is empty: (body, redelivered, delivery_mode)."""
    got = []
    while True:
        method, properties, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return got
        got.append((body, method.redelivered, properties.delivery_mode))


@contextlib.contextmanager
def open_channel(broker: BrokerProcess) -> Iterator[
        pika.adapters.blocking_connection.BlockingChannel]:
    connection = connect(broker)
    try:
        yield connection.channel()
    finally:
        with contextlib.suppress(Exception):  # the broker may be gone (SIGKILL)
            connection.close()


def assert_refused(broker: BrokerProcess, declare: str, *args: object,
                   **kwargs: object) -> int:
    """The declare fails with a channel error; returns its reply code."""
    with open_channel(broker) as channel:
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as closed:
            getattr(channel, declare)(*args, **kwargs)
        return closed.value.reply_code


@pytest.mark.parametrize("how", ["term", "kill"])
def test_durable_definitions_and_persistent_messages_survive(broker: BrokerProcess,
                                                             how: str) -> None:
    broker.start()
    setup = connect(broker)  # stays open: it owns the exclusive queue until the end
    build_topology(setup.channel())

    broker.restart(how)

    assert snapshot(broker) == expected_snapshot()
    with open_channel(broker) as channel:
        for queue, bodies in EXPECTED_MESSAGES.items():
            got = get_all(channel, queue)
            assert [body for body, _, _ in got] == bodies, queue
            assert all(redelivered for _, redelivered, _ in got), f"{queue}: {got}"
            assert all(mode == 2 for _, _, mode in got), f"{queue}: {got}"

    # The definitions came back with their properties and arguments...
    with open_channel(broker) as channel:
        channel.exchange_declare("r.withae", "direct", durable=True,
                                 arguments={"alternate-exchange": "r.ae"})
        channel.exchange_declare("r.headers", "headers", durable=True)
        channel.queue_declare("r.q.limited", durable=True, arguments={"x-max-length": 2})
        channel.queue_declare("r.q.direct", durable=True)
    assert assert_refused(broker, "exchange_declare", "r.direct", "fanout", durable=True) == 406
    assert assert_refused(broker, "queue_declare", "r.q.direct", durable=False) == 406
    assert assert_refused(broker, "queue_declare", "r.q.limited", durable=True,
                          arguments={"x-max-length": 3}) == 406

    # ... and the bindings route as before (e2e, headers arguments, alternate exchange);
    # the unbound, deleted and non-durable ones do not.
    with open_channel(broker) as channel:
        channel.confirm_delivery()
        publish(channel, "r.direct", "k", b"k")
        publish(channel, "r.direct", "e2e", b"e2e")
        publish(channel, "r.headers", "", b"headers",
                pika.BasicProperties(delivery_mode=2, headers={"color": "red", "size": 5}))
        publish(channel, "r.withae", "anything", b"ae")
        for _ in range(3):
            publish(channel, "", "r.q.limited", b"limited")
        for exchange, key, properties in [
                ("r.direct", "gone", PERSISTENT),
                ("r.headers", "", pika.BasicProperties(headers={"color": "red", "size": 6})),
                ("r.headers", "", pika.BasicProperties(headers={"color": "red"}))]:
            with pytest.raises(pika.exceptions.UnroutableError):
                publish(channel, exchange, key, b"unroutable", properties)
        counts = {queue: channel.queue_declare(queue, passive=True).method.message_count
                  for queue in DURABLE_QUEUES}
    assert counts == {"r.q.direct": 1, "r.q.e2e": 1, "r.q.headers": 1, "r.q.ae": 1,
                      "r.q.unbound": 0, "r.q.on-transient-x": 0, "r.q.limited": 2,
                      "r.q.purged": 0, "r.q.empty": 0}
    assert broker.stop() == 0


def test_second_graceful_start_finds_exactly_what_was_there(broker: BrokerProcess) -> None:
    broker.start()
    setup = connect(broker)
    build_topology(setup.channel())
    assert broker.stop() == 0
    broker.start()
    first = snapshot(broker)
    assert broker.stop() == 0
    broker.start()
    second = snapshot(broker)
    assert first == second == expected_snapshot()
    with open_channel(broker) as channel:
        for queue, bodies in EXPECTED_MESSAGES.items():
            assert [body for body, _, _ in get_all(channel, queue)] == bodies, queue
    assert broker.stop() == 0


def test_only_durable_things_touch_the_disk(broker: BrokerProcess) -> None:
    """Read the store file while the broker runs (WAL readers do not block it): nothing
    non-durable, exclusive or transient was ever written; the deleted and purged things are
    no longer there."""
    broker.start()
    setup = connect(broker)
    build_topology(setup.channel())
    uri = f"file:{broker.store_path}?mode=ro"
    db = sqlite3.connect(uri, uri=True)
    try:
        exchanges = {name for (name,) in db.execute("SELECT name FROM exchanges")}
        queues = {name for (name,) in db.execute("SELECT name FROM queues")}
        bindings = set(db.execute("SELECT source, destination, routing_key FROM bindings"))
        queue_names = dict(db.execute("SELECT store_id, name FROM queues"))
    finally:
        db.close()
    expected = {queue: bodies for queue, bodies in EXPECTED_MESSAGES.items() if bodies}
    # Acks of purged and deleted messages are written within a second, not at once.
    wait_for(lambda: stored_messages(broker.data_dir, queue_names) == expected, 10,
               "the message segments to hold only the expected messages")
    assert exchanges == set(DURABLE_EXCHANGES)
    assert queues == set(DURABLE_QUEUES)
    assert bindings == {("r.direct", "r.q.direct", "k"), ("r.direct", "r.fanout", "e2e"),
                        ("r.fanout", "r.q.e2e", ""), ("r.headers", "r.q.headers", ""),
                        ("r.ae", "r.q.ae", "")}
    assert broker.stop() == 0


def stored_messages(data_dir: Path, queue_names: dict[int, str]) -> dict[str, list[bytes]]:
    """The live messages in the segment files, by queue, read without changing them."""
    stored: dict[str, list[bytes]] = {}
    directory = data_dir / "messages"
    for path in sorted(directory.glob("*.seg")):
        acks_path = path.with_suffix(".acks")
        acks = acks_path.read_bytes() if acks_path.exists() else b""
        acked = {struct.unpack_from(">IQ", acks, i) for i in range(0, len(acks) - 11, 12)}
        data = path.read_bytes()
        records, offset = {}, 0
        while offset + 4 <= len(data):
            (length,) = struct.unpack_from(">I", data, offset)
            record = data[offset + 4:offset + 4 + length]
            if record[:1] == b"M":
                _, queue_id, seq = struct.unpack_from(">BIQ", record)
                body = records[offset] = decode_message(record[13:])[3]
            else:
                assert record[:1] == b"L", record[:1]
                _, queue_id, seq, message_offset = struct.unpack(">BIQI", record)
                body = records[message_offset]
            if queue_id in queue_names and (queue_id, seq) not in acked:
                stored.setdefault(queue_names[queue_id], []).append(body)
            offset += 4 + length
    return stored


@pytest.mark.parametrize("how", ["term", "kill"])
def test_non_durable_things_are_gone_after_restart(broker: BrokerProcess, how: str) -> None:
    """A broker with only non-durable and exclusive things, and transient messages: after a
    restart nothing of it is left."""
    broker.start()
    setup = connect(broker)
    channel = setup.channel()
    channel.confirm_delivery()
    channel.exchange_declare("n.x", "fanout", durable=False)
    channel.queue_declare("n.q", durable=False)
    channel.queue_declare("n.excl", durable=False, exclusive=True)
    channel.queue_declare("n.durable", durable=True)
    for queue in ("n.q", "n.excl", "n.durable"):
        channel.queue_bind(queue, "n.x", "")
    publish(channel, "n.x", "", b"transient", TRANSIENT)
    publish(channel, "n.x", "", b"persistent", PERSISTENT)

    broker.restart(how)

    with open_channel(broker) as channel:
        assert not exchange_exists(channel.connection.channel, "n.x")
        assert not queue_exists(channel.connection.channel, "n.q")
        assert not queue_exists(channel.connection.channel, "n.excl")
        assert [body for body, _, _ in get_all(channel, "n.durable")] == [b"persistent"]


def test_delayed_message_survives_kill_and_arrives_when_due(broker: BrokerProcess) -> None:
    """A persistent message held by a durable x-delayed-message exchange (x-delay 3000 ms),
    SIGKILL right after its confirm: after the restart it is routed once the delay has
    passed, not before; a transient one held alongside is gone."""
    delay = 3.0
    broker.start()
    setup = connect(broker)
    channel = setup.channel()
    channel.exchange_declare("r.delayed", "x-delayed-message", durable=True,
                             arguments={"x-delayed-type": "direct"})
    channel.queue_declare("r.q.delayed", durable=True)
    channel.queue_bind("r.q.delayed", "r.delayed", "d")
    channel.confirm_delivery()
    published_at = time.time()
    publish(channel, "r.delayed", "d", b"delayed-transient",
            pika.BasicProperties(delivery_mode=1, headers={"x-delay": 3000}))
    channel.basic_publish("r.delayed", "d", b"delayed-persistent",
                          pika.BasicProperties(delivery_mode=2, headers={"x-delay": 3000}))
    broker.kill()  # right after the confirm
    assert time.time() < published_at + delay, "too slow to test anything"

    broker.start()
    with open_channel(broker) as channel:
        def count() -> int:
            return channel.queue_declare("r.q.delayed", passive=True).method.message_count

        polls: list[tuple[float, int]] = []

        def arrived() -> bool:
            polls.append((time.time(), count()))
            return polls[-1][1] > 0

        wait_for(arrived, delay + 10.0, "the delayed message")
        first_seen = polls[-1][0]
        early = [at - published_at for at, n in polls if n and at < published_at + delay]
        assert not early, f"arrived {early[0]:.3f}s after publishing, before its delay"
        assert first_seen >= published_at + delay - 0.05
        got = get_all(channel, "r.q.delayed")
    assert [body for body, _, _ in got] == [b"delayed-persistent"]
    assert got[0][2] == 2


def test_binding_to_exclusive_queue_does_not_outlive_it(broker: BrokerProcess) -> None:
    """An exclusive (durable-flagged) queue bound to a durable exchange: the binding goes
    with the queue. A durable queue declared later under the same name must not inherit it
    after a restart."""
    broker.start()
    owner = connect(broker)
    channel = owner.channel()
    channel.exchange_declare("r.direct", "direct", durable=True)
    channel.queue_declare("r.q.reused", durable=True, exclusive=True)
    channel.queue_bind("r.q.reused", "r.direct", "k")
    owner.close()  # the exclusive queue and its binding are gone
    with open_channel(broker) as channel:
        channel.queue_declare("r.q.reused", durable=True)  # a new, unbound durable queue

    broker.restart("kill")

    with open_channel(broker) as channel:
        channel.confirm_delivery()
        with pytest.raises(pika.exceptions.UnroutableError):
            publish(channel, "r.direct", "k", b"to nowhere")
        assert channel.queue_declare("r.q.reused", passive=True).method.message_count == 0


def test_unbind_with_reordered_headers_arguments_is_durable(broker: BrokerProcess) -> None:
    """Binding arguments are a table: unbinding with the same entries in another order
    removes the binding, and it stays removed after a restart."""
    broker.start()
    with open_channel(broker) as channel:
        channel.exchange_declare("r.headers", "headers", durable=True)
        channel.queue_declare("r.q.headers", durable=True)
        channel.queue_bind("r.q.headers", "r.headers", "", arguments=RED_5)
        channel.queue_unbind("r.q.headers", "r.headers", "",
                             arguments={"size": 5, "color": "red", "x-match": "all"})
        channel.confirm_delivery()
        red_5 = pika.BasicProperties(delivery_mode=2, headers={"color": "red", "size": 5})
        with pytest.raises(pika.exceptions.UnroutableError):
            publish(channel, "r.headers", "", b"before the restart", red_5)

    broker.restart("kill")

    with open_channel(broker) as channel:
        channel.confirm_delivery()
        with pytest.raises(pika.exceptions.UnroutableError):
            publish(channel, "r.headers", "", b"after the restart", red_5)
