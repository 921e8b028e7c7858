"""What a running broker holds, as typed snapshots for tests: queues and their messages
(peeked, never consumed), consumers, exchanges, bindings, connections, outstanding
confirms and dead-lettered messages.

Each function reads the model of one server's vhost and must run on the broker's event
loop; the snapshots are frozen copies that stay valid after the broker moves on. Header
values come as Python values: long strings as `str` where they are UTF-8, tables as dicts.

The conditions a test waits for are `Wait`s: a check that gives a result once the
condition holds, and what to say about the broker's state when it never does. The
callers poll them with a deadline, from a thread or on the loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from amqpbroker.broker import properties
from amqpbroker.broker.queue import Queue
from amqpbroker.management.shapes import bindings as binding_rows
from amqpbroker.management.shapes import connection_name, unacked_by_queue

if TYPE_CHECKING:
    from amqpbroker.broker.message import Entry
    from amqpbroker.broker.vhost import VirtualHost
    from amqpbroker.transport.bridge import ClientConnection
    from amqpbroker.transport.server import Server

SHOWN_MESSAGES = 5  # messages an error quotes from a queue


class Missing(AssertionError):
    """A test asked about an object the broker does not have."""


@dataclass(frozen=True)
class MessageInfo:
    """One message as a queue holds it."""

    body: bytes
    exchange: str
    routing_key: str
    properties: dict[str, Any]
    headers: dict[str, Any]
    redelivered: bool

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    @property
    def x_death(self) -> list[dict[str, Any]]:
        """The `x-death` entries, newest first (RabbitMQ's order); [] if never dead-lettered."""
        deaths = self.headers.get("x-death")
        return deaths if isinstance(deaths, list) else []


@dataclass(frozen=True)
class QueueInfo:
    name: str
    vhost: str
    durable: bool
    auto_delete: bool
    exclusive: bool
    arguments: dict[str, Any]
    ready: int
    unacked: int
    consumers: int

    @property
    def depth(self) -> int:
        """Messages the queue holds: ready plus delivered and not yet acked."""
        return self.ready + self.unacked


@dataclass(frozen=True)
class ConsumerInfo:
    queue: str
    tag: str
    connection: str
    channel: int
    ack_required: bool
    exclusive: bool
    prefetch: int
    unacked: int
    arguments: dict[str, Any]


@dataclass(frozen=True)
class ExchangeInfo:
    name: str
    vhost: str
    type: str
    durable: bool
    auto_delete: bool
    internal: bool
    arguments: dict[str, Any]


@dataclass(frozen=True)
class BindingInfo:
    source: str
    destination: str
    destination_type: str
    routing_key: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class ConnectionInfo:
    name: str
    user: str
    vhost: str
    peer: str
    channels: int
    client_properties: dict[str, Any] = field(default_factory=dict)


def plain(value: Any) -> Any:
    """A decoded AMQP value with UTF-8 byte strings as `str` (others stay bytes)."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value
    return value


def vhost_of(server: Server, vhost: str) -> VirtualHost:
    found = server.broker.vhosts.get(vhost)
    if found is None:
        raise Missing(f"no vhost '{vhost}' (vhosts: {', '.join(sorted(server.broker.vhosts))})")
    return found


def queue_of(server: Server, vhost: str, name: str) -> Queue:
    host = vhost_of(server, vhost)
    found = host.queues.get(name)
    if found is None:
        names = ", ".join(sorted(host.queues)) or "none"
        raise Missing(f"no queue '{name}' in vhost '{vhost}' (queues: {names})")
    return found


def message(entry: Entry) -> MessageInfo:
    msg = entry.message
    decoded = properties.decode(msg)
    values = {name: plain(value) for name, value in decoded
              if value not in (None, "") and name != "headers"}
    return MessageInfo(body=msg.body, exchange=msg.exchange, routing_key=msg.routing_key,
                       properties=values, headers=plain(decoded.headers or {}),
                       redelivered=entry.redelivered)


def _clients(server: Server, vhost: str) -> Iterator[ClientConnection]:
    for client in server.clients:
        if client.session is not None and client.session.vhost.name == vhost:
            yield client


def queue_info(server: Server, q: Queue) -> QueueInfo:
    unacked = unacked_by_queue(_clients(server, q.vhost_name)).get(q, (0, 0))[0]
    return QueueInfo(name=q.name, vhost=q.vhost_name, durable=q.durable,
                     auto_delete=q.auto_delete, exclusive=q.exclusive_owner is not None,
                     arguments=plain(q.arguments), ready=q.message_count, unacked=unacked,
                     consumers=q.consumer_count)


def queues(server: Server, vhost: str) -> list[QueueInfo]:
    return [queue_info(server, q) for _, q in sorted(vhost_of(server, vhost).queues.items())]


def queue(server: Server, vhost: str, name: str) -> QueueInfo:
    return queue_info(server, queue_of(server, vhost, name))


def messages(server: Server, vhost: str, name: str) -> list[MessageInfo]:
    """The ready messages of a queue in delivery order (paged ones too), left in place."""
    return [message(entry) for entry in queue_of(server, vhost, name).buffer]


def unacked_messages(server: Server, vhost: str, name: str) -> list[MessageInfo]:
    """The messages of a queue delivered and not yet acked, by delivery."""
    q = queue_of(server, vhost, name)
    return [message(record.entry) for client in _clients(server, vhost)
            for channel in client.session.channels.values()  # type: ignore[union-attr]
            for record in channel.unacked.values() if record.queue is q]


def consumers(server: Server, vhost: str, queue_name: str | None = None) -> list[ConsumerInfo]:
    found = []
    for client in _clients(server, vhost):
        for number, channel in sorted(client.session.channels.items()):  # type: ignore[union-attr]
            for consumer in channel.consumers.values():
                q = consumer.queue
                if queue_name is not None and q.name != queue_name:
                    continue
                found.append(ConsumerInfo(
                    queue=q.name, tag=consumer.tag, connection=connection_name(client),
                    channel=number,
                    ack_required=not consumer.no_ack, exclusive=consumer.exclusive,
                    prefetch=consumer.prefetch, unacked=consumer.unacked,
                    arguments=plain(consumer.arguments)))
    return found


def exchanges(server: Server, vhost: str) -> list[ExchangeInfo]:
    return [ExchangeInfo(name=x.name, vhost=vhost, type=x.type, durable=x.durable,
                         auto_delete=x.auto_delete, internal=x.internal,
                         arguments=plain(x.arguments))
            for _, x in sorted(vhost_of(server, vhost).exchanges.items())]


def bindings(server: Server, vhost: str) -> list[BindingInfo]:
    """Every binding, the default exchange's included (as RabbitMQ lists them)."""
    return [BindingInfo(source=row["source"], destination=row["destination"],
                        destination_type=row["destination_type"],
                        routing_key=row["routing_key"], arguments=row["arguments"])
            for row in binding_rows(vhost_of(server, vhost))]


def connections(server: Server, vhost: str) -> list[ConnectionInfo]:
    return sorted((ConnectionInfo(name=connection_name(client),
                                  user=client.session.username,  # type: ignore[union-attr]
                                  vhost=vhost, peer=client.peer,
                                  channels=len(client.session.channels),  # type: ignore[union-attr]
                                  client_properties=plain(client.protocol.client_properties))
                   for client in _clients(server, vhost)), key=lambda c: c.name)


def client_named(server: Server, name: str) -> ClientConnection:
    """The open connection `name` (as `ConnectionInfo.name` gives it)."""
    for client in server.clients:
        if connection_name(client) == name:
            return client
    open_names = ", ".join(sorted(connection_name(c) for c in server.clients))
    raise Missing(f"no connection '{name}' (open: {open_names or 'none'})")


def confirms_outstanding(server: Server, vhost: str) -> int:
    """Publishes on confirm-mode channels not yet confirmed (acked or nacked)."""
    outstanding = 0
    for client in _clients(server, vhost):
        for channel in client.session.channels.values():  # type: ignore[union-attr]
            if channel.confirm:
                outstanding += channel.publish_seq - channel.confirmed_upto
    return outstanding


def dead_lettered(server: Server, vhost: str, reason: str | None = None) -> list[MessageInfo]:
    """Messages held in the vhost's queues that were dead-lettered (for `reason`:
    rejected, expired, maxlen or delivery_limit), queue by queue."""
    found = []
    for name in sorted(vhost_of(server, vhost).queues):
        for info in messages(server, vhost, name) + unacked_messages(server, vhost, name):
            if info.x_death and (reason is None
                                 or any(d.get("reason") == reason for d in info.x_death)):
                found.append(info)
    return found


def describe(server: Server, vhost: str, name: str) -> str:
    """A queue as an assertion error tells it: counts and the first messages."""
    try:
        info = queue(server, vhost, name)
    except Missing as exc:
        return str(exc)
    shown = messages(server, vhost, name)[:SHOWN_MESSAGES]
    text = (f"queue '{name}' has {info.ready} ready, {info.unacked} unacked, "
            f"{info.consumers} consumers")
    if shown:
        more = ", ..." if info.ready > len(shown) else ""
        text += ": " + ", ".join(repr(m.body) for m in shown) + more
    return text


@dataclass(frozen=True)
class Wait:
    """A condition on one vhost: `check(server)` is None until it holds, then what the
    wait returns; `explain(server)` tells what the broker holds when it does not."""

    what: str
    check: Callable[[Server], Any]
    explain: Callable[[Server], str]


def _quietly(check: Callable[[Server], Any]) -> Callable[[Server], Any]:
    """A check that is None, not an error, while its object does not exist yet."""
    def run(server: Server) -> Any:
        try:
            return check(server)
        except Missing:
            return None
    return run


def _about(vhost: str, name: str) -> Callable[[Server], str]:
    return lambda server: describe(server, vhost, name)


def queue_depth(vhost: str, name: str, depth: int) -> Wait:
    """Queue `name` holds `depth` messages (ready plus unacked)."""
    def check(server: Server) -> QueueInfo | None:
        info = queue(server, vhost, name)
        return info if info.depth == depth else None
    return Wait(f"queue '{name}' to hold {depth} messages", _quietly(check), _about(vhost, name))


def message_in(vhost: str, name: str, predicate: Callable[[MessageInfo], bool] | None = None
               ) -> Wait:
    """A ready message of queue `name` for which `predicate` holds (any, without one)."""
    def check(server: Server) -> MessageInfo | None:
        return next((m for m in messages(server, vhost, name)
                     if predicate is None or predicate(m)), None)
    return Wait(f"a matching message in queue '{name}'", _quietly(check), _about(vhost, name))


def all_acked(vhost: str, name: str) -> Wait:
    """Queue `name` holds nothing: every message was delivered and acked."""
    def check(server: Server) -> QueueInfo | None:
        info = queue(server, vhost, name)
        return info if info.depth == 0 else None
    return Wait(f"every message of queue '{name}' to be acked", _quietly(check),
                _about(vhost, name))


def consumer_count(vhost: str, name: str, count: int) -> Wait:
    """Queue `name` has `count` consumers."""
    def check(server: Server) -> list[ConsumerInfo] | None:
        queue_of(server, vhost, name)
        found = consumers(server, vhost, name)
        return found if len(found) == count else None
    return Wait(f"{count} consumers on queue '{name}'", _quietly(check), _about(vhost, name))


def connection_count(vhost: str, count: int) -> Wait:
    """`count` connections are open on the vhost."""
    def check(server: Server) -> list[ConnectionInfo] | None:
        found = connections(server, vhost)
        return found if len(found) == count else None

    def explain(server: Server) -> str:
        names = [c.name for c in connections(server, vhost)]
        return f"vhost '{vhost}' has {len(names)} connections: {', '.join(names) or 'none'}"
    return Wait(f"{count} connections on vhost '{vhost}'", check, explain)
