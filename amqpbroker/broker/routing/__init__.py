"""Exchange routing: one router class per exchange type, all sharing the `Router` interface.

A router owns an exchange's bindings and answers "which destinations get this message".
Destinations are opaque hashable objects (queues or exchanges). Pure, synchronous, no IO.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Protocol

from amqpbroker.broker.routing.direct import DirectRouter
from amqpbroker.broker.routing.fanout import FanoutRouter
from amqpbroker.broker.routing.headers import HeadersRouter
from amqpbroker.broker.routing.topic import TopicRouter

__all__ = ["ROUTERS", "DirectRouter", "FanoutRouter", "HeadersRouter", "Router", "TopicRouter"]


class Router(Protocol):
    """The bindings of one exchange.

    `add` is only called for a new (destination, routing_key, arguments) triple and
    `remove` only for an existing one; removing every binding leaves no internal garbage.
    """

    def add(self, destination: Hashable, routing_key: str, arguments: dict) -> None: ...

    def remove(self, destination: Hashable, routing_key: str, arguments: dict) -> None: ...

    def route(self, routing_key: str, headers: dict | None, out: set) -> None:
        """Add every destination the message matches to `out`."""
        ...

    @staticmethod
    def check_arguments(arguments: dict) -> None:
        """Raise `ChannelError` if the binding arguments are invalid for this type."""
        ...


ROUTERS: dict[str, type] = {
    "direct": DirectRouter,
    "fanout": FanoutRouter,
    "topic": TopicRouter,
    "headers": HeadersRouter,
}
