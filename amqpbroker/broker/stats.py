"""Message statistics: the counters that channels, queues and exchanges bump as messages
pass, with RabbitMQ's names. The hot path only increments plain integer slots; sums,
samples and rates are the management plane's business.
"""

from __future__ import annotations

COUNTERS = ("publish", "publish_in", "publish_out", "confirm", "return_unroutable",
            "drop_unroutable", "deliver", "deliver_no_ack", "get", "get_no_ack",
            "get_empty", "ack", "redeliver")


class MessageStats:
    """One object's counters since it was made (those that do not apply stay 0)."""

    __slots__ = COUNTERS

    def __init__(self) -> None:
        self.publish = self.publish_in = self.publish_out = self.confirm = 0
        self.return_unroutable = self.drop_unroutable = 0
        self.deliver = self.deliver_no_ack = self.get = self.get_no_ack = 0
        self.get_empty = self.ack = self.redeliver = 0

    def values(self) -> tuple[int, ...]:
        """The counters in `COUNTERS` order."""
        return tuple(getattr(self, name) for name in COUNTERS)

    def add(self, other: MessageStats) -> None:
        """Fold another object's counters into these (a closed channel into its vhost)."""
        for name in COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(other, name))


CHURN = ("connection_created", "connection_closed", "channel_created", "channel_closed",
         "queue_declared", "queue_created", "queue_deleted")


class Churn:
    """The node's object churn since start: connections, channels and queues made and
    gone (RabbitMQ's `churn_rates`)."""

    __slots__ = CHURN

    def __init__(self) -> None:
        self.connection_created = self.connection_closed = 0
        self.channel_created = self.channel_closed = 0
        self.queue_declared = self.queue_created = self.queue_deleted = 0

    def values(self) -> tuple[int, ...]:
        return tuple(getattr(self, name) for name in CHURN)
