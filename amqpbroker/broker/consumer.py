"""Consumers: a subscription of one channel to one queue, with its prefetch credit, and
the direct reply-to pseudo-consumer of a channel, which has no queue."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from amqpbroker.broker.channel import Channel
    from amqpbroker.broker.queue import Queue


class Consumer:
    """Delivers messages of `queue` to `channel` under the tag `tag`."""

    __slots__ = ("arguments", "channel", "exclusive", "no_ack", "prefetch", "priority", "queue",
                 "tag", "tag_bytes", "timeout", "unacked")

    def __init__(self, channel: Channel, queue: Queue, tag: str, *, no_ack: bool,
                 exclusive: bool, prefetch: int, arguments: dict[str, Any],
                 timeout: float | None = None) -> None:
        self.channel = channel
        self.queue = queue
        self.tag = tag
        self.tag_bytes = tag.encode("utf-8")
        self.no_ack = no_ack
        self.exclusive = exclusive
        self.prefetch = prefetch
        self.arguments = arguments
        priority = arguments.get("x-priority", 0)
        self.priority = priority if isinstance(priority, int) else 0
        self.timeout = timeout
        self.unacked = 0

    def can_take(self) -> bool:
        """True when a delivery now would respect flow, prefetch and the write buffer."""
        channel = self.channel
        if not channel.active or not channel.sink.writable():
            return False
        if self.no_ack:
            return True
        if self.prefetch and self.unacked >= self.prefetch:
            return False
        return not (channel.prefetch and channel.unacked_count >= channel.prefetch)


class ReplyConsumer:
    """The consumer of amq.rabbitmq.reply-to on one channel: replies published to the
    channel's reply address go straight to it, never acknowledged, never queued."""

    __slots__ = ("channel", "tag", "tag_bytes")

    def __init__(self, channel: Channel, tag: str) -> None:
        self.channel = channel
        self.tag = tag
        self.tag_bytes = tag.encode("utf-8")
