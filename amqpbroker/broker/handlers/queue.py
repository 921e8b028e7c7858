"""Queue class: declare, bind, unbind, purge, delete."""

from __future__ import annotations

from collections.abc import Callable

from pamqp import commands

from amqpbroker import names
from amqpbroker.broker.channel import Channel


def queue_name(channel: Channel, name: str) -> str:
    """An empty queue name means the channel's last declared queue (AMQP 0-9-1)."""
    return name or channel.last_queue


def declare(channel: Channel, method: commands.Queue.Declare) -> None:
    session = channel.session
    if method.queue == names.REPLY_TO and method.passive:
        channel.sink.send_method(channel.id, commands.Queue.DeclareOk(
            queue=names.REPLY_TO, message_count=0, consumer_count=1))
        return
    name = method.queue
    server_named = not name and not method.passive
    if not method.passive:
        name = name or names.server_named_queue()
        session.check("configure", "queue", name)
    queue = session.vhost.declare_queue(
        session, name, method.passive, method.durable, method.exclusive,
        method.auto_delete, method.arguments or {}, server_named)
    channel.last_queue = queue.name
    if not method.nowait:
        channel.sink.send_method(channel.id, commands.Queue.DeclareOk(
            queue=queue.name, message_count=queue.message_count,
            consumer_count=queue.consumer_count))


def _check_binding(channel: Channel, queue: str, exchange: str, routing_key: str) -> None:
    channel.session.check("write", "queue", queue)
    channel.session.check("read", "exchange", exchange)
    channel.session.check_topic("read", exchange, routing_key)


def bind(channel: Channel, method: commands.Queue.Bind) -> None:
    session = channel.session
    name = queue_name(channel, method.queue)
    _check_binding(channel, name, method.exchange, method.routing_key)
    session.vhost.bind_queue(session, name, method.exchange, method.routing_key,
                             method.arguments or {})
    if not method.nowait:
        channel.sink.send_method(channel.id, commands.Queue.BindOk())


def unbind(channel: Channel, method: commands.Queue.Unbind) -> None:
    name = queue_name(channel, method.queue)
    _check_binding(channel, name, method.exchange, method.routing_key)
    channel.session.vhost.unbind_queue(name, method.exchange, method.routing_key,
                                       method.arguments or {})
    channel.sink.send_method(channel.id, commands.Queue.UnbindOk())


def purge(channel: Channel, method: commands.Queue.Purge) -> None:
    session = channel.session
    name = queue_name(channel, method.queue)
    session.check("read", "queue", name)
    count = session.vhost.purge_queue(session, name)
    if not method.nowait:
        channel.sink.send_method(channel.id, commands.Queue.PurgeOk(message_count=count))


def delete(channel: Channel, method: commands.Queue.Delete) -> None:
    session = channel.session
    name = queue_name(channel, method.queue)
    session.check("configure", "queue", name)
    count = session.vhost.delete_queue(session, name, method.if_unused, method.if_empty)
    if not method.nowait:
        channel.sink.send_method(channel.id, commands.Queue.DeleteOk(message_count=count))


HANDLERS: dict[int, Callable[..., None]] = {
    commands.Queue.Declare.index: declare,
    commands.Queue.Bind.index: bind,
    commands.Queue.Unbind.index: unbind,
    commands.Queue.Purge.index: purge,
    commands.Queue.Delete.index: delete,
}
