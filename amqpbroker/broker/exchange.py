"""An exchange: its declared properties, its policy, its bindings and the router of its
type."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from amqpbroker.broker.routing import ROUTERS, HeadersRouter
from amqpbroker.broker.stats import MessageStats

if TYPE_CHECKING:
    from amqpbroker.broker.policies import Policy
    from amqpbroker.broker.queue import Queue

DELAYED_TYPE = "x-delayed-message"


def freeze(value: Any) -> Any:
    """A hashable, order-independent form of a binding's arguments."""
    if isinstance(value, dict):
        return tuple(sorted((k, freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    if isinstance(value, bool):
        return ("bool", value)
    return value


class Exchange:
    """One exchange of one virtual host. The default exchange has no router."""

    __slots__ = ("alternate", "arguments", "auto_delete", "bindings", "by_headers", "delayed",
                 "durable", "inbound", "internal", "name", "policy", "router", "stats",
                 "type", "vhost_name")

    def __init__(self, *, name: str, vhost_name: str, type_: str, durable: bool,
                 auto_delete: bool, internal: bool, arguments: dict[str, Any]) -> None:
        self.name = name
        self.vhost_name = vhost_name
        self.type = type_
        self.durable = durable
        self.auto_delete = auto_delete
        self.internal = internal
        self.arguments = arguments
        self.alternate: str | None = None
        self.apply_policy(None)
        # x-delayed-message holds messages, then routes them as its x-delayed-type does.
        self.delayed = type_ == DELAYED_TYPE
        self.router = ROUTERS[arguments["x-delayed-type"] if self.delayed else type_]()
        self.by_headers = isinstance(self.router, HeadersRouter)
        self.bindings: dict[tuple[Queue | Exchange, str, Any], dict[str, Any]] = {}
        self.inbound: set[tuple[Exchange, str, Any]] = set()
        self.stats = MessageStats()

    def __repr__(self) -> str:
        return f"<Exchange {self.name!r} ({self.type}) in {self.vhost_name!r}>"

    def apply_policy(self, policy: Policy | None) -> None:
        """Take the policy that now applies (None: none). The `alternate-exchange`
        argument wins over the policy's, as in RabbitMQ."""
        self.policy: Policy | None = policy
        alternate = self.arguments.get("alternate-exchange")
        if not isinstance(alternate, str) and policy is not None:
            alternate = policy.definition.get("alternate-exchange")
        self.alternate = alternate if isinstance(alternate, str) else None

    @property
    def effective_policy_definition(self) -> dict[str, Any]:
        """The policy settings in force (RabbitMQ's effective_policy_definition)."""
        return dict(self.policy.definition) if self.policy is not None else {}

    def bind(self, destination: Queue | Exchange, routing_key: str,
             arguments: dict[str, Any]) -> bool:
        """Add a binding; False when it already existed."""
        key = (destination, routing_key, freeze(arguments))
        if key in self.bindings:
            return False
        self.bindings[key] = arguments
        self.router.add(destination, routing_key, arguments)
        destination.inbound.add((self, routing_key, key[2]))
        return True

    def unbind(self, destination: Queue | Exchange, routing_key: str, frozen: Any) -> bool:
        """Remove a binding given its frozen arguments; False when there was none."""
        arguments = self.bindings.pop((destination, routing_key, frozen), None)
        if arguments is None:
            return False
        self.router.remove(destination, routing_key, arguments)
        destination.inbound.discard((self, routing_key, frozen))
        return True
