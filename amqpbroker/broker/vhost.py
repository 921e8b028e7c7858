"""A virtual host: its exchanges and queues, and the single place definitions change.

Declare, delete, bind, unbind and purge are methods here, called the same way by the
AMQP handlers and (later) by the HTTP API and definition imports. Routing across
exchange-to-exchange bindings and alternate exchanges lives here too, and so do the
vhost's policies and operator policies (`set_policy`, `clear_policy`), re-applied to
its queues and exchanges whenever they change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from amqpbroker import errors, names
from amqpbroker.broker import deadletter
from amqpbroker.broker.arguments import check_queue, field_type
from amqpbroker.broker.dispatch import ReadyQueues
from amqpbroker.broker.exchange import DELAYED_TYPE, Exchange, freeze
from amqpbroker.broker.policies import (
    Policy,
    make_policy,
    match_exchange,
    match_queue,
    warn_no_effect,
)
from amqpbroker.broker.queue import Queue
from amqpbroker.broker.routing import ROUTERS
from amqpbroker.broker.stats import Churn, MessageStats

if TYPE_CHECKING:
    from amqpbroker.broker.buffers import Paging
    from amqpbroker.broker.channel import Channel
    from amqpbroker.broker.message import Message
    from amqpbroker.broker.session import Session
    from amqpbroker.broker.timers import Timers
    from amqpbroker.store.base import Store

PREDECLARED = (
    ("amq.direct", "direct"),
    ("amq.fanout", "fanout"),
    ("amq.topic", "topic"),
    ("amq.headers", "headers"),
    ("amq.match", "headers"),
)
EXCHANGE_ARGS = ("alternate-exchange",)
QUEUE_ARGS = (
    "x-dead-letter-exchange", "x-dead-letter-routing-key", "x-expires", "x-max-length",
    "x-max-length-bytes", "x-max-priority", "x-message-ttl", "x-overflow", "x-queue-mode",
    "x-queue-type", "x-queue-version", "x-single-active-consumer", "x-delivery-limit",
)


def _render(value: Any) -> str:
    """A value as RabbitMQ prints it in its texts (Erlang's short float form)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return errors.erlang_float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    return type(a) is type(b) and a == b


def _check_args(kind: str, name: str, vhost: str, known: tuple[str, ...],
                received: dict[str, Any], current: dict[str, Any]) -> None:
    for arg in known:
        new, old = received.get(arg), current.get(arg)
        if new is None and old is None:
            continue
        if arg == "x-queue-type" and new is None and old == "classic":
            continue
        if new is None:
            raise errors.inequivalent_arg(
                arg, kind, name, vhost, "none",
                f"the value '{_render(old)}' of type '{field_type(old)}'")
        if old is None:
            if arg == "x-queue-type" and new == "classic":
                continue
            raise errors.inequivalent_arg(
                arg, kind, name, vhost,
                f"the value '{_render(new)}' of type '{field_type(new)}'", "none")
        if not _same(new, old):
            raise errors.inequivalent_arg(
                arg, kind, name, vhost, f"'{_render(new)}'", f"'{_render(old)}'")


def _check_flag(arg: str, kind: str, name: str, vhost: str, received: bool,
                current: bool) -> None:
    if received != current:
        raise errors.inequivalent_arg(
            arg, kind, name, vhost, f"'{_render(received)}'", f"'{_render(current)}'")


class VirtualHost:
    """Exchanges and queues of one virtual host."""

    def __init__(self, *, name: str, timers: Timers, store: Store,
                 paging: Paging | None = None, churn: Churn | None = None) -> None:
        self.name = name
        self.churn = churn or Churn()
        self.timers = timers
        self.store = store
        self.paging = paging
        self.exchanges: dict[str, Exchange] = {}
        self.queues: dict[str, Queue] = {}
        self.reply_channels: dict[str, Channel] = {}
        self.ready = ReadyQueues()
        self.policies: dict[str, Policy] = {}
        self.operator_policies: dict[str, Policy] = {}
        # Counters of the channels that were closed, and of the default exchange.
        self.closed_channel_stats = MessageStats()
        self.default_exchange_stats = MessageStats()
        for exchange_name, type_ in PREDECLARED:
            self.exchanges[exchange_name] = Exchange(
                name=exchange_name, vhost_name=name, type_=type_, durable=True,
                auto_delete=False, internal=False, arguments={})
        self.exchanges["amq.rabbitmq.trace"] = Exchange(
            name="amq.rabbitmq.trace", vhost_name=name, type_="topic", durable=True,
            auto_delete=False, internal=True, arguments={})

    # --- exchanges -------------------------------------------------------------------

    def exchange(self, name: str) -> Exchange:
        exchange = self.exchanges.get(name)
        if exchange is None:
            raise errors.exchange_not_found(name, self.name)
        return exchange

    def declare_exchange(self, name: str, type_: str, passive: bool, durable: bool,
                         auto_delete: bool, internal: bool,
                         arguments: dict[str, Any]) -> Exchange:
        if name == names.DEFAULT_EXCHANGE:
            raise errors.default_exchange_refused()
        existing = self.exchanges.get(name)
        if passive:
            if existing is None:
                raise errors.exchange_not_found(name, self.name)
            return existing
        if type_ not in ROUTERS and type_ != DELAYED_TYPE:
            raise errors.unknown_exchange_type(type_)
        if type_ == DELAYED_TYPE and arguments.get("x-delayed-type") not in ROUTERS:
            raise errors.ChannelError(
                errors.PRECONDITION_FAILED,
                "Invalid argument, 'x-delayed-type' must be an existing exchange type")
        if existing is not None:
            if existing.type != type_:
                raise errors.inequivalent_arg("type", "exchange", name, self.name,
                                              f"'{type_}'", f"'{existing.type}'")
            _check_flag("durable", "exchange", name, self.name, durable, existing.durable)
            _check_flag("auto_delete", "exchange", name, self.name, auto_delete,
                        existing.auto_delete)
            _check_flag("internal", "exchange", name, self.name, internal, existing.internal)
            _check_args("exchange", name, self.name, EXCHANGE_ARGS, arguments,
                        existing.arguments)
            return existing
        if names.is_reserved(name):
            raise errors.reserved_name("exchange", name)
        exchange = Exchange(name=name, vhost_name=self.name, type_=type_, durable=durable,
                            auto_delete=auto_delete, internal=internal, arguments=arguments)
        exchange.apply_policy(self.exchange_policy(name))
        self.exchanges[name] = exchange
        if durable:
            self.store.put_exchange(self.name, name, type_, auto_delete, internal, arguments)
        return exchange

    def delete_exchange(self, name: str, if_unused: bool) -> None:
        if name == names.DEFAULT_EXCHANGE:
            raise errors.default_exchange_refused()
        if names.is_reserved(name):
            raise errors.system_exchange_delete(name, self.name)
        exchange = self.exchanges.get(name)
        if exchange is None:
            return
        if if_unused and exchange.bindings:
            raise errors.exchange_in_use(name, self.name)
        self._remove_exchange(exchange)

    def _remove_exchange(self, exchange: Exchange) -> None:
        if self.exchanges.get(exchange.name) is not exchange:
            return
        del self.exchanges[exchange.name]
        if exchange.durable:
            self.store.delete_exchange(self.name, exchange.name)
        for destination, key, frozen in list(exchange.bindings):
            exchange.unbind(destination, key, frozen)
            if isinstance(destination, Exchange):
                self._maybe_auto_delete(destination)
        for source, key, frozen in list(exchange.inbound):
            source.unbind(exchange, key, frozen)
            self._maybe_auto_delete(source)

    def _maybe_auto_delete(self, exchange: Exchange) -> None:
        if exchange.auto_delete and not exchange.bindings:
            self._remove_exchange(exchange)

    def bind_exchange(self, destination: str, source: str, routing_key: str,
                      arguments: dict[str, Any]) -> None:
        if destination == names.DEFAULT_EXCHANGE or source == names.DEFAULT_EXCHANGE:
            raise errors.default_exchange_refused()
        src = self.exchange(source)
        dst = self.exchange(destination)
        src.router.check_arguments(arguments)
        if src.bind(dst, routing_key, arguments) and src.durable and dst.durable:
            self.store.put_binding(self.name, source, destination, "exchange", routing_key,
                                   arguments)

    def unbind_exchange(self, destination: str, source: str, routing_key: str,
                        arguments: dict[str, Any]) -> None:
        """Never fails on a missing binding or exchange (RabbitMQ's behaviour): an
        auto-delete exchange may already be gone with its last binding."""
        if destination == names.DEFAULT_EXCHANGE or source == names.DEFAULT_EXCHANGE:
            raise errors.default_exchange_refused()
        src = self.exchanges.get(source)
        dst = self.exchanges.get(destination)
        if src is None or dst is None:
            return
        if src.unbind(dst, routing_key, freeze(arguments)):
            if src.durable and dst.durable:
                self.store.delete_binding(self.name, source, destination, "exchange",
                                          routing_key, arguments)
            self._maybe_auto_delete(src)

    # --- queues ------------------------------------------------------------------------

    def queue(self, name: str, session: Session | None) -> Queue:
        """The named queue, checked for existence and exclusive ownership."""
        queue = self.queues.get(name)
        if queue is None:
            raise errors.queue_not_found(name, self.name)
        if queue.exclusive_owner is not None and queue.exclusive_owner is not session:
            raise errors.queue_locked(name, self.name)
        return queue

    def declare_queue(self, session: Session | None, name: str, passive: bool, durable: bool,
                      exclusive: bool, auto_delete: bool, arguments: dict[str, Any],
                      server_named: bool = False) -> Queue:
        """Declare a queue (an empty name: a new server-named one; `server_named`: the name
        was generated by the caller)."""
        self.churn.queue_declared += 1
        if passive:
            queue = self.queue(name, session)
            queue.touch()
            return queue
        existing = self.queues.get(name)
        if existing is not None:
            if existing.exclusive_owner is not None and existing.exclusive_owner is not session:
                raise errors.queue_locked(name, self.name)
            if (existing.exclusive_owner is not None) != exclusive:
                raise errors.queue_locked(name, self.name)
            _check_flag("durable", "queue", name, self.name, durable, existing.durable)
            _check_flag("auto_delete", "queue", name, self.name, auto_delete,
                        existing.auto_delete)
            _check_args("queue", name, self.name, QUEUE_ARGS, arguments, existing.arguments)
            existing.touch()
            return existing
        if not name:
            name = names.server_named_queue()
        elif names.is_reserved(name) and not server_named:
            raise errors.reserved_name("queue", name)
        check_queue(name, self.name, durable, exclusive, auto_delete, arguments)
        owner = session if exclusive else None
        queue = Queue(name=name, vhost=self, durable=durable, auto_delete=auto_delete,
                      exclusive_owner=owner, arguments=arguments)
        self.queues[name] = queue
        self.churn.queue_created += 1
        if queue.stored:
            self.store.put_queue(self.name, name, auto_delete, arguments)
        if owner is not None:
            owner.exclusive_queues.add(queue)
        return queue

    def delete_queue(self, session: Session | None, name: str, if_unused: bool,
                     if_empty: bool) -> int:
        queue = self.queues.get(name)
        if queue is None:
            return 0
        self.queue(name, session)
        if if_unused and queue.groups:
            raise errors.queue_in_use(name, self.name)
        if if_empty and queue.message_count:
            raise errors.queue_not_empty(name, self.name)
        count = queue.message_count
        self.remove_queue(queue)
        return count

    def remove_queue(self, queue: Queue) -> None:
        """Delete a queue: unbind it, cancel its consumers, drop its messages."""
        if self.queues.get(queue.name) is not queue:
            return
        del self.queues[queue.name]
        self.churn.queue_deleted += 1
        if queue.stored:
            self.store.delete_queue(self.name, queue.name)
        consumers = queue.consumers
        queue.delete()
        for source, key, frozen in list(queue.inbound):
            source.unbind(queue, key, frozen)
            self._maybe_auto_delete(source)
        for consumer in consumers:
            consumer.channel.consumer_cancelled_by_server(consumer)
        if queue.exclusive_owner is not None:
            queue.exclusive_owner.exclusive_queues.discard(queue)

    def purge_queue(self, session: Session | None, name: str) -> int:
        return self.queue(name, session).purge()

    def bind_queue(self, session: Session | None, queue_name: str, exchange_name: str,
                   routing_key: str, arguments: dict[str, Any]) -> None:
        if exchange_name == names.DEFAULT_EXCHANGE:
            raise errors.default_exchange_refused()
        exchange = self.exchange(exchange_name)
        queue = self.queue(queue_name, session)
        exchange.router.check_arguments(arguments)
        if exchange.bind(queue, routing_key, arguments) and exchange.durable and queue.stored:
            self.store.put_binding(self.name, exchange_name, queue.name, "queue", routing_key,
                                   arguments)

    def unbind_queue(self, queue_name: str, exchange_name: str, routing_key: str,
                     arguments: dict[str, Any]) -> None:
        """Never fails on a missing binding, queue or exchange (RabbitMQ's behaviour)."""
        if exchange_name == names.DEFAULT_EXCHANGE:
            raise errors.default_exchange_refused()
        exchange = self.exchanges.get(exchange_name)
        queue = self.queues.get(queue_name)
        if exchange is None or queue is None:
            return
        if exchange.unbind(queue, routing_key, freeze(arguments)):
            if exchange.durable and queue.stored:
                self.store.delete_binding(self.name, exchange_name, queue_name, "queue",
                                          routing_key, arguments)
            self._maybe_auto_delete(exchange)

    def set_queue_expires(self, queue: Queue, expires: int | None) -> None:
        """Change a queue's `x-expires` argument (ms; None: none), recorded if the queue
        is: a frontend's session that outlives its connection for another time (an MQTT
        5 session expiry given at DISCONNECT)."""
        arguments = {k: v for k, v in queue.arguments.items() if k != "x-expires"}
        if expires is not None:
            arguments["x-expires"] = expires
        queue.arguments = arguments
        queue.apply_policy(queue.policy, queue.operator_policy)
        if queue.stored:
            self.store.put_queue(self.name, queue.name, queue.auto_delete, arguments)

    def consumer_gone(self, queue: Queue) -> None:
        """Auto-delete: a queue that had consumers goes when its last one does."""
        if queue.auto_delete and queue.had_consumer and not queue.groups:
            self.remove_queue(queue)

    # --- policies ------------------------------------------------------------------------

    def set_policy(self, name: str, pattern: str, definition: dict[str, Any],
                   priority: int | float = 0, apply_to: str = "all", operator: bool = False,
                   record: bool = True) -> Policy:
        """Add or replace a policy (`operator`: an operator policy) and apply it at once
        to the queues and exchanges it now governs. Raises PolicyError with RabbitMQ's
        text. Setting an identical policy changes nothing, in memory or in the store."""
        policy = make_policy(self.name, name, pattern, definition, priority, apply_to,
                             operator)
        table = self.operator_policies if operator else self.policies
        existing = table.get(name)
        if policy.same_as(existing):
            assert existing is not None
            return existing
        table[name] = policy
        warn_no_effect(policy)
        if record:
            self.store.put_runtime(policy.kind, f"{self.name}\x00{name}", policy.to_json())
        self.apply_policies()
        return policy

    def clear_policy(self, name: str, operator: bool = False) -> bool:
        """Remove a policy (`operator`: an operator policy); the objects it governed fall
        back to the next matching policy or their arguments. False if there was none."""
        table = self.operator_policies if operator else self.policies
        policy = table.pop(name, None)
        if policy is None:
            return False
        self.store.delete_runtime(policy.kind, f"{self.name}\x00{name}")
        self.apply_policies()
        return True

    def restore_policy(self, kind: str, value: dict[str, Any]) -> Policy:
        """Re-create a policy recorded in the store (`kind` "policy" or
        "operator_policy"), without recording it again."""
        return self.set_policy(value["name"], value["pattern"], value["definition"],
                               value["priority"], value["apply-to"],
                               operator=kind == "operator_policy", record=False)

    def queue_policies(self, name: str, queue_type: str) -> tuple[Policy | None, Policy | None]:
        """The policy and the operator policy that apply to a queue of this name and type."""
        return (match_queue(self.policies.values(), name, queue_type),
                match_queue(self.operator_policies.values(), name, queue_type))

    def exchange_policy(self, name: str) -> Policy | None:
        """The policy that applies to an exchange of this name."""
        return match_exchange(self.policies.values(), name)

    def apply_policies(self) -> None:
        """Match every queue and exchange again; those whose policies changed take the
        new ones."""
        for queue in list(self.queues.values()):
            policy, operator_policy = self.queue_policies(queue.name, queue.queue_type)
            if policy is not queue.policy or operator_policy is not queue.operator_policy:
                queue.apply_policy(policy, operator_policy)
        for exchange in self.exchanges.values():
            policy = self.exchange_policy(exchange.name)
            if policy is not exchange.policy:
                exchange.apply_policy(policy)

    # --- routing -------------------------------------------------------------------------

    def route_message(self, exchange: Exchange | None, message: Message
                      ) -> set[Queue] | tuple[Queue, ...]:
        """The queues a message reaches from `exchange` (None: the default exchange), by
        its routing key and any CC/BCC sender-selected keys."""
        extra = message.sender_routes()
        if exchange is None:
            if not extra:
                queue = self.queues.get(message.routing_key)
                return (queue,) if queue is not None else ()
            queues = set()
            for key in (message.routing_key, *extra):
                queue = self.queues.get(key)
                if queue is not None:
                    queues.add(queue)
            return queues
        queues = self.route(exchange, message, message.routing_key)
        for key in extra:
            queues = queues | self.route(exchange, message, key)
        return queues

    def route(self, exchange: Exchange, message: Message, routing_key: str) -> set[Queue]:
        """Every queue the message reaches from `exchange`, each once, following
        exchange-to-exchange bindings (cycles allowed) and alternate exchanges."""
        found: set[Any] = set()
        exchange.router.route(routing_key, message.headers if exchange.by_headers else None,
                              found)
        if found or exchange.alternate is None:
            for destination in found:
                if type(destination) is not Queue:
                    break
            else:
                return found
        queues: set[Queue] = set()
        seen = {exchange}
        pending = [(exchange, found)]
        while pending:
            source, destinations = pending.pop()
            if not destinations and source.alternate is not None:
                alternate = self.exchanges.get(source.alternate)
                if alternate is not None and alternate not in seen:
                    destinations = {alternate}
            for destination in destinations:
                if isinstance(destination, Queue):
                    queues.add(destination)
                elif destination not in seen:
                    seen.add(destination)
                    out: set[Any] = set()
                    destination.router.route(
                        routing_key, message.headers if destination.by_headers else None, out)
                    pending.append((destination, out))
        return queues

    def dead_letter(self, queue: Queue, message: Message, reason: str) -> None:
        """Republish a message that died in `queue` to its dead-letter exchange, with
        RabbitMQ's x-death record; cycles without a rejection are dropped."""
        exchange_name = queue.dead_letter_exchange
        if exchange_name is None:
            return
        exchange = self.exchanges.get(exchange_name) if exchange_name else None
        if exchange is None and exchange_name:
            return
        dead = deadletter.dead_letter(message, queue.name, reason,
                                      queue.dead_letter_routing_key, self.timers.wall_clock(),
                                      dlx=exchange_name)
        for target in self.route_message(exchange, dead):
            if not deadletter.is_cycle(dead, target.name, reason):
                target.enqueue(dead)

    def hold_delayed(self, exchange: Exchange, message: Message, delay: float,
                     stored: int = 0) -> None:
        """x-delayed-message: route the message when its x-delay has passed. Persistent
        messages on a durable exchange are stored until then (`stored`: already are)."""
        timers = self.timers
        if not stored and exchange.durable and message.persistent and self.store.durable:
            stored = self.store.put_delayed(self.name, exchange.name,
                                            timers.wall_clock() + delay, message.routing_key,
                                            message.header, message.body)

        def due(now: float) -> None:
            if stored:
                self.store.delete_delayed(stored)
            if self.exchanges.get(exchange.name) is exchange:
                for queue in self.route_message(exchange, message):
                    queue.enqueue(message)

        timers.call_at(timers.now() + max(delay, 0.0), due)
