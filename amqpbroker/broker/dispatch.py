"""Queues that took messages while their consumers waited, delivered from together.

A publish does not deliver on the publisher's stack: the queue only marks itself ready
here. The connection that published dispatches its vhost's ready queues once at the end
of its read pass (and before any other method, so that the order clients see does not
change); the timer loop does the same after the timers it runs. Each delivery hands a
message to the consumer connection's own sink, and a failure there ends only that
connection (`Channel.deliver`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from amqpbroker.broker.queue import Queue


class ReadyQueues(dict["Queue", None]):
    """An ordered set of queues with messages for waiting consumers."""

    __slots__ = ()

    def dispatch(self) -> None:
        """Let every ready queue deliver (and the queues those deliveries make ready)."""
        while self:
            queues = list(self)
            self.clear()
            for queue in queues:
                queue.dispatch()
