"""A queue: its ready messages, its consumers, dispatch, and the RabbitMQ extensions
that act on them: message TTL, queue expiry, length limits with overflow, priorities,
single active consumer, consumer priorities and delivery limits.

Those settings come from the queue's arguments, its policy and its operator policy,
resolved in one place (`apply_policy`) when the queue is made and whenever its policies
change. Dead-lettering and deletion are the virtual host's business; the queue asks for
them.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from amqpbroker.broker import properties
from amqpbroker.broker.buffers import FifoBuffer, PriorityBuffer
from amqpbroker.broker.message import Entry, Message
from amqpbroker.broker.policies import effective_definition
from amqpbroker.broker.stats import MessageStats

if TYPE_CHECKING:
    from amqpbroker.broker.consumer import Consumer
    from amqpbroker.broker.exchange import Exchange
    from amqpbroker.broker.policies import Policy
    from amqpbroker.broker.session import Session
    from amqpbroker.broker.timers import Timer
    from amqpbroker.broker.vhost import VirtualHost

QUORUM_DELIVERY_LIMIT = 20
# What a queued message costs in memory beyond its body: its Entry and Message objects,
# the bytes objects' headers and its slot in the queue (shared headers not counted).
ENTRY_OVERHEAD = 400


def _seconds(value: Any) -> float | None:
    return value / 1000.0 if isinstance(value, int) and not isinstance(value, bool) else None


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else None


class Queue:
    """One queue of one virtual host."""

    def __init__(self, *, name: str, vhost: VirtualHost, durable: bool, auto_delete: bool,
                 exclusive_owner: Session | None, arguments: dict[str, Any]) -> None:
        self.name = name
        self.vhost = vhost
        self.vhost_name = vhost.name
        self.durable = durable
        self.auto_delete = auto_delete
        self.exclusive_owner = exclusive_owner
        self.arguments = arguments
        self.queue_type = _text(arguments.get("x-queue-type")) or "classic"
        self.single_active = arguments.get("x-single-active-consumer") is True
        max_priority = _count(arguments.get("x-max-priority"))
        paging = vhost.paging
        self.buffer: FifoBuffer | PriorityBuffer = (
            PriorityBuffer(max_priority) if max_priority is not None
            else FifoBuffer(paging))
        self.bytes = 0
        self.store = vhost.store
        # Exclusive queues die with their connection, so they are never stored.
        self.stored = durable and exclusive_owner is None
        self.store_messages = self.stored and vhost.store.durable
        self.groups: dict[int, deque[Consumer]] = {}
        self.priorities: list[int] = []
        self.inbound: set[tuple[Exchange, str, Any]] = set()
        self.next_seq = 0
        self.had_consumer = False
        self.deleted = False
        self._expiry_timer: Timer | None = None
        self._unused_timer: Timer | None = None
        self.has_ttl = False  # some message may carry an expiry
        self.expires: float | None = None
        self.stats = MessageStats()
        self.apply_policy(*vhost.queue_policies(name, self.queue_type))

    def apply_policy(self, policy: Policy | None, operator_policy: Policy | None) -> None:
        """Take the policy and operator policy that now apply (None: none) and resolve
        every setting from them and the arguments, as RabbitMQ does: for message-ttl,
        expires, max-length, max-length-bytes, delivery-limit and consumer-timeout the
        smallest value wins; for dead-letter-exchange, dead-letter-routing-key and
        overflow the argument wins (a quorum queue's overflow: the policy). The change
        holds at once: a lower length limit drops the excess at the head (drop-head),
        dead-lettered as usual; a changed expiry counts again from now; a message TTL
        counts for messages enqueued from now on (queued ones keep their expiry)."""
        self.policy = policy
        self.operator_policy = operator_policy
        definition = effective_definition(policy, operator_policy)
        self.effective_policy_definition = definition
        arguments = self.arguments
        quorum = self.queue_type == "quorum"

        def smallest(key: str) -> int | None:
            values = [v for v in (_count(arguments.get("x-" + key)), _count(definition.get(key)))
                      if v is not None]
            return min(values) if values else None

        def argument_first(key: str, policy_first: bool = False) -> str | None:
            argument, value = _text(arguments.get("x-" + key)), _text(definition.get(key))
            if policy_first:
                return value if value is not None else argument
            return argument if argument is not None else value

        limit = smallest("delivery-limit")
        settings: dict[str, Any] = {
            "x-message-ttl": smallest("message-ttl"),
            "x-expires": smallest("expires"),
            "x-max-length": smallest("max-length"),
            "x-max-length-bytes": smallest("max-length-bytes"),
            "x-overflow": argument_first("overflow", policy_first=quorum),
            "x-dead-letter-exchange": argument_first("dead-letter-exchange"),
            "x-dead-letter-routing-key": argument_first("dead-letter-routing-key"),
            "x-delivery-limit": QUORUM_DELIVERY_LIMIT if limit is None and quorum else limit,
            "x-consumer-timeout": smallest("consumer-timeout"),
        }
        effective = {k: v for k, v in arguments.items() if k not in settings}
        effective.update((k, v) for k, v in settings.items() if v is not None)
        self.effective_arguments = effective
        self.message_ttl = _seconds(settings["x-message-ttl"])
        self.max_length = settings["x-max-length"]
        self.max_length_bytes = settings["x-max-length-bytes"]
        self.overflow = settings["x-overflow"] or "drop-head"
        self.dead_letter_exchange = settings["x-dead-letter-exchange"]
        self.dead_letter_routing_key = settings["x-dead-letter-routing-key"]
        self.delivery_limit = settings["x-delivery-limit"]
        self.consumer_timeout = _seconds(settings["x-consumer-timeout"])
        self.has_ttl = self.has_ttl or self.message_ttl is not None
        self.limited = self.max_length is not None or self.max_length_bytes is not None
        expires = _seconds(settings["x-expires"])
        if expires != self.expires:
            self.expires = expires
            if self._unused_timer is not None:
                self._unused_timer.cancel()
                self._unused_timer = None
            self.touch()
        if self.limited and self.overflow == "drop-head":
            self._drop_head_over_limit()

    def __repr__(self) -> str:
        return f"<Queue {self.name!r} in {self.vhost_name!r}>"

    @property
    def message_count(self) -> int:
        """Messages ready for delivery (unacked ones excluded, as RabbitMQ)."""
        return len(self.buffer)

    @property
    def memory(self) -> int:
        """Bytes the queue's ready messages hold in memory, bookkeeping included."""
        buffer = self.buffer
        return self.bytes - buffer.paged_bytes + buffer.in_memory * ENTRY_OVERHEAD

    @property
    def consumer_count(self) -> int:
        return sum(len(group) for group in self.groups.values())

    @property
    def consumers(self) -> list[Consumer]:
        return [c for priority in self.priorities for c in self.groups[priority]]

    # --- publishing ---------------------------------------------------------------------

    def enqueue(self, message: Message) -> bool:
        """Take a routed message; False when the queue refuses it (reject-publish)."""
        size = len(message.body)
        if self.limited and self.overflow != "drop-head" and self._full(size):
            if self.overflow == "reject-publish-dlx":
                self.vhost.dead_letter(self, message, "maxlen")
            return False
        expires_at = None
        ttl = self.message_ttl
        if message.expiration is not None:
            self.has_ttl = True
            per_message = _seconds(int(message.expiration)) if message.expiration else None
            if per_message is not None and (ttl is None or per_message < ttl):
                ttl = per_message
        now = None
        if ttl is not None:
            now = self.vhost.timers.now()
            expires_at = now + ttl
        self.next_seq += 1
        self.stats.publish += 1
        stored = 0
        if self.store_messages and message.persistent:
            stored = self.store.put_message((self.vhost_name, self.name, self.next_seq),
                                            message.exchange, message.routing_key,
                                            message.header, message.body)
        self.buffer.push(Entry(self.next_seq, message, expires_at, stored=stored))
        self.bytes += size
        if self.groups:
            if self.limited or expires_at is not None:
                self.dispatch(now)  # delivery before the drop or expiry it would prevent
            else:
                self.vhost.ready[self] = None  # delivered at the end of the pass
        if self.limited:
            self._drop_head_over_limit()
        if expires_at is not None:
            if now is not None and expires_at <= now:
                self._expire(now)  # a TTL of 0 that no consumer took at once
            else:
                self.schedule_expiry()
        return True

    def _full(self, incoming: int) -> bool:
        if self.max_length is not None and len(self.buffer) >= self.max_length:
            return True
        return (self.max_length_bytes is not None
                and self.bytes + incoming > self.max_length_bytes)

    def _drop_head_over_limit(self) -> None:
        while len(self.buffer) and (
                (self.max_length is not None and len(self.buffer) > self.max_length)
                or (self.max_length_bytes is not None and self.bytes > self.max_length_bytes)):
            entry = self._take()
            assert entry is not None
            self.discard(entry, "maxlen")

    # --- taking messages out -----------------------------------------------------------------

    def _take(self) -> Entry | None:
        entry = self.buffer.pop()
        if entry is not None:
            self.bytes -= len(entry.message.body)
        return entry

    def pop(self, now: float | None = None) -> Entry | None:
        """The next live message (expired ones at the head are dead-lettered on the way).
        A message is live until strictly after its expiry time, so one with a TTL of 0
        reaches a consumer that is ready when it arrives."""
        entry = self._take()
        if self.has_ttl:
            if now is None:
                now = self.vhost.timers.now()
            while entry is not None and entry.expires_at is not None and entry.expires_at < now:
                self.discard(entry, "expired")
                entry = self._take()
            self.schedule_expiry()
        return entry

    def requeue(self, entry: Entry) -> None:
        """Put a delivered message back at its original position, marked redelivered;
        over the delivery limit it is dead-lettered instead."""
        if self.deleted:
            return
        entry.redelivered = True
        entry.delivery_count += 1
        if self.delivery_limit is not None:
            if entry.delivery_count > self.delivery_limit:
                self.discard(entry, "delivery_limit")
                return
            headers = dict(entry.message.headers or {})
            headers["x-delivery-count"] = entry.delivery_count
            entry.message = properties.replace(entry.message, headers=headers)
        self.buffer.requeue(entry)
        self.bytes += len(entry.message.body)
        if self.limited and self.overflow == "drop-head":
            self._drop_head_over_limit()
        if entry.expires_at is not None:
            self.schedule_expiry()

    def settle(self, entry: Entry) -> None:
        """The message is done with (acked, or delivered without ack): forget it. (A
        deleted queue's rows went with it; a successor of the same name has its own.)"""
        if self.store_messages and entry.message.persistent and not self.deleted:
            self.store.delete_message((self.vhost_name, self.name, entry.seq))

    def discard(self, entry: Entry, reason: str) -> None:
        """The message died here (rejected, expired, maxlen, delivery_limit): dead-letter
        it if the queue says so, and forget it."""
        self.vhost.dead_letter(self, entry.message, reason)
        self.settle(entry)

    def delete(self) -> None:
        """The queue is gone: forget consumers, messages and timers."""
        self.deleted = True
        self.groups.clear()
        self.priorities = []
        self.buffer.close()
        self.bytes = 0
        for timer in (self._expiry_timer, self._unused_timer):
            if timer is not None:
                timer.cancel()

    def purge(self) -> int:
        count = len(self.buffer)
        if self.store_messages and count:
            for entry in self.buffer:
                self.settle(entry)
        self.buffer.clear()
        self.bytes = 0
        return count

    # --- time -----------------------------------------------------------------------------

    def schedule_expiry(self) -> None:
        head = self.buffer.peek()
        when = head.expires_at if head is not None else None
        timer = self._expiry_timer
        if timer is not None:
            if not timer.cancelled and timer.when == when:
                return
            timer.cancel()
            self._expiry_timer = None
        if when is not None and not self.deleted:
            self._expiry_timer = self.vhost.timers.call_at(when, self._expire)

    def _expire(self, now: float) -> None:
        """Dead-letter (or drop) the expired messages at the head."""
        buffer = self.buffer
        while True:
            head = buffer.peek()
            if head is None or head.expires_at is None or head.expires_at > now:
                break
            self._take()
            self.discard(head, "expired")
        self.schedule_expiry()

    def touch(self) -> None:
        """The queue was used (declared, gotten from, last consumer gone): x-expires
        counts from now."""
        if self.expires is None or self.deleted:
            return
        if self._unused_timer is not None:
            self._unused_timer.cancel()
            self._unused_timer = None
        if not self.groups:
            timers = self.vhost.timers
            self._unused_timer = timers.call_at(timers.now() + self.expires, self._unused)

    def _unused(self, now: float) -> None:
        self._unused_timer = None
        if not self.groups and not self.deleted:
            self.vhost.remove_queue(self)

    # --- consumers ---------------------------------------------------------------------------

    def add_consumer(self, consumer: Consumer) -> None:
        priority = consumer.priority
        group = self.groups.get(priority)
        if group is None:
            group = self.groups[priority] = deque()
            self.priorities = sorted(self.groups, reverse=True)
        group.append(consumer)
        self.had_consumer = True
        if self._unused_timer is not None:
            self._unused_timer.cancel()
            self._unused_timer = None
        self.dispatch()

    def remove_consumer(self, consumer: Consumer) -> None:
        group = self.groups.get(consumer.priority)
        if group is None or consumer not in group:
            return
        group.remove(consumer)
        if not group:
            del self.groups[consumer.priority]
            self.priorities = sorted(self.groups, reverse=True)
        if not self.groups:
            self.touch()
        elif self.single_active:
            self.dispatch()

    def has_exclusive_consumer(self) -> bool:
        return any(c.exclusive for c in self.consumers)

    def _next_consumer(self) -> Consumer | None:
        """Highest priority first, round robin within a priority; with single active
        consumer, only the first one registered."""
        if self.single_active:
            first = self.groups[self.priorities[0]][0]
            return first if first.can_take() else None
        for priority in self.priorities:
            group = self.groups[priority]
            for _ in range(len(group)):
                consumer = group[0]
                group.rotate(-1)
                if consumer.can_take():
                    return consumer
        return None

    def dispatch(self, now: float | None = None) -> None:
        """Hand ready messages to consumers with credit."""
        buffer = self.buffer
        while self.groups and buffer:
            consumer = self._next_consumer()
            if consumer is None:
                return
            entry = self.pop(now)
            if entry is None:
                return
            consumer.channel.deliver(consumer, entry)
