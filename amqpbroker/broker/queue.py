"""A queue: ready messages in publish order, its consumers, round-robin dispatch.

Requeued messages go back to their original publish position (RabbitMQ's behaviour):
they are kept in `returned`, sorted by sequence number, and always precede `ready`,
because every message handed out was older than every message still waiting.
"""

from __future__ import annotations

import bisect
from collections import deque
from typing import TYPE_CHECKING, Any

from amqpbroker.broker.message import Entry, Message

if TYPE_CHECKING:
    from amqpbroker.broker.consumer import Consumer
    from amqpbroker.broker.exchange import Exchange
    from amqpbroker.broker.session import Session


class Queue:
    """One queue of one virtual host."""

    __slots__ = ("arguments", "auto_delete", "consumers", "deleted", "durable",
                 "exclusive_owner", "had_consumer", "inbound", "name", "next_seq", "ready",
                 "returned", "vhost_name")

    def __init__(self, name: str, vhost_name: str, durable: bool, auto_delete: bool,
                 exclusive_owner: Session | None, arguments: dict[str, Any]) -> None:
        self.name = name
        self.vhost_name = vhost_name
        self.durable = durable
        self.auto_delete = auto_delete
        self.exclusive_owner = exclusive_owner
        self.arguments = arguments
        self.ready: deque[Entry] = deque()
        self.returned: list[Entry] = []
        self.consumers: deque[Consumer] = deque()
        self.inbound: set[tuple[Exchange, str, Any]] = set()
        self.next_seq = 0
        self.had_consumer = False
        self.deleted = False

    def __repr__(self) -> str:
        return f"<Queue {self.name!r} in {self.vhost_name!r}>"

    @property
    def message_count(self) -> int:
        """Messages ready for delivery (unacked ones excluded, as RabbitMQ)."""
        return len(self.ready) + len(self.returned)

    def enqueue(self, message: Message) -> None:
        self.next_seq += 1
        self.ready.append(Entry(self.next_seq, message))
        if self.consumers:
            self.dispatch()

    def pop(self) -> Entry | None:
        if self.returned:
            return self.returned.pop(0)
        if self.ready:
            return self.ready.popleft()
        return None

    def requeue(self, entry: Entry) -> None:
        """Put a delivered message back at its original position, marked redelivered."""
        if self.deleted:
            return
        entry.redelivered = True
        bisect.insort(self.returned, entry)

    def purge(self) -> int:
        count = self.message_count
        self.ready.clear()
        self.returned.clear()
        return count

    def add_consumer(self, consumer: Consumer) -> None:
        self.consumers.append(consumer)
        self.had_consumer = True
        self.dispatch()

    def remove_consumer(self, consumer: Consumer) -> None:
        try:
            self.consumers.remove(consumer)
        except ValueError:
            return

    def has_exclusive_consumer(self) -> bool:
        return any(c.exclusive for c in self.consumers)

    def dispatch(self) -> None:
        """Hand ready messages to consumers with credit, round robin."""
        consumers = self.consumers
        if not consumers:
            return
        ready = self.ready
        returned = self.returned
        count = len(consumers)
        idle = 0
        while ready or returned:
            consumer = consumers[0]
            if count > 1:
                consumers.rotate(-1)
            if consumer.can_take():
                entry = returned.pop(0) if returned else ready.popleft()
                consumer.channel.deliver(consumer, entry)
                idle = 0
            else:
                idle += 1
                if idle >= count:
                    return
