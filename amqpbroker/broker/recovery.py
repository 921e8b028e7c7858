"""Rebuild vhosts, users, permissions, policies, durable exchanges, queues, bindings,
persistent messages and delayed messages from a store snapshot at start.

Recovered messages come back in their original order, marked redelivered: the broker
does not record deliveries, so any of them may have been seen before the restart.
Message TTLs count again from the restart. Recovery pages as the running broker does:
past a queue's in-memory limit, messages go to its page file by their location in the
store, without being decoded, so memory after a restart is what it was before.
"""

from __future__ import annotations

from collections.abc import Callable

from amqpbroker.broker.broker import Broker
from amqpbroker.broker.buffers import FifoBuffer
from amqpbroker.broker.exchange import Exchange
from amqpbroker.broker.message import Entry, Message
from amqpbroker.broker.queue import Queue
from amqpbroker.broker.vhost import VirtualHost
from amqpbroker.store.base import Snapshot
from amqpbroker.store.messages import body_size, decode_message

MessageFactory = Callable[[str, str, bytes, bytes], Message]


def recover(broker: Broker, snapshot: Snapshot, make_message: MessageFactory) -> int:
    """Load the snapshot into the broker; returns the number of messages recovered."""
    def vhost(name: str) -> VirtualHost:
        return broker.add_vhost(name, record=False)

    for kind, _key, value in snapshot.runtime:
        broker.restore_runtime(kind, value)
    for row in snapshot.exchanges:
        host = vhost(row["vhost"])
        host.exchanges[row["name"]] = Exchange(
            name=row["name"], vhost_name=host.name, type_=row["type"], durable=True,
            auto_delete=row["auto_delete"], internal=row["internal"], arguments=row["arguments"])
        host.exchanges[row["name"]].apply_policy(host.exchange_policy(row["name"]))
    for row in snapshot.queues:
        host = vhost(row["vhost"])
        host.queues[row["name"]] = Queue(name=row["name"], vhost=host, durable=True,
                                         auto_delete=row["auto_delete"], exclusive_owner=None,
                                         arguments=row["arguments"])
    for row in snapshot.bindings:
        host = vhost(row["vhost"])
        source = host.exchanges.get(row["source"])
        destinations = host.queues if row["kind"] == "queue" else host.exchanges
        destination = destinations.get(row["destination"])
        if source is not None and destination is not None:
            source.bind(destination, row["routing_key"], row["arguments"])
    now = broker.timers.now()
    count = 0
    for stored in snapshot.messages:
        queue = vhost(stored.vhost).queues.get(stored.queue)
        if queue is None:
            continue
        ttl = queue.message_ttl
        buffer = queue.buffer
        queue.next_seq = max(queue.next_seq, stored.seq)
        count += 1
        if ttl is None and isinstance(buffer, FifoBuffer) and buffer.paging:
            size = body_size(stored.fields)  # paged by location, never decoded
            buffer.page_stored(stored.location, True, size)
            queue.bytes += size
            continue
        message = make_message(*decode_message(stored.fields))
        entry = Entry(stored.seq, message, now + ttl if ttl is not None else None,
                      stored=stored.location)
        entry.redelivered = True
        buffer.push(entry)
        queue.bytes += len(message.body)
    for queue in (q for host in broker.vhosts.values() for q in host.queues.values()):
        if queue.message_ttl is not None:
            queue.schedule_expiry()
    wall = broker.timers.wall_clock()
    for delayed in snapshot.delayed:
        host = vhost(delayed.vhost)
        exchange = host.exchanges.get(delayed.exchange)
        if exchange is None:
            broker.store.delete_delayed(delayed.id)
            continue
        message = make_message(delayed.exchange, delayed.routing_key, delayed.header,
                               delayed.body)
        host.hold_delayed(exchange, message, delayed.due - wall, delayed.id)
    return count
