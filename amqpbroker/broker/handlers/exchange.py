"""Exchange class: declare, delete, bind, unbind."""

from __future__ import annotations

from collections.abc import Callable

from pamqp import commands

from amqpbroker.broker.channel import Channel


def declare(channel: Channel, method: commands.Exchange.Declare) -> None:
    if not method.passive:
        channel.session.check("configure", "exchange", method.exchange)
    channel.session.vhost.declare_exchange(
        method.exchange, method.exchange_type, method.passive, method.durable,
        method.auto_delete, method.internal, method.arguments or {})
    if not method.nowait:
        channel.sink.send_method(channel.id, commands.Exchange.DeclareOk())


def delete(channel: Channel, method: commands.Exchange.Delete) -> None:
    channel.session.check("configure", "exchange", method.exchange)
    channel.session.vhost.delete_exchange(method.exchange, method.if_unused)
    if not method.nowait:
        channel.sink.send_method(channel.id, commands.Exchange.DeleteOk())


def _check_binding(channel: Channel, destination: str, source: str, routing_key: str) -> None:
    channel.session.check("write", "exchange", destination)
    channel.session.check("read", "exchange", source)
    channel.session.check_topic("read", source, routing_key)


def bind(channel: Channel, method: commands.Exchange.Bind) -> None:
    _check_binding(channel, method.destination, method.source, method.routing_key)
    channel.session.vhost.bind_exchange(
        method.destination, method.source, method.routing_key, method.arguments or {})
    if not method.nowait:
        channel.sink.send_method(channel.id, commands.Exchange.BindOk())


def unbind(channel: Channel, method: commands.Exchange.Unbind) -> None:
    _check_binding(channel, method.destination, method.source, method.routing_key)
    channel.session.vhost.unbind_exchange(
        method.destination, method.source, method.routing_key, method.arguments or {})
    if not method.nowait:
        channel.sink.send_method(channel.id, commands.Exchange.UnbindOk())


HANDLERS: dict[int, Callable[..., None]] = {
    commands.Exchange.Declare.index: declare,
    commands.Exchange.Delete.index: delete,
    commands.Exchange.Bind.index: bind,
    commands.Exchange.Unbind.index: unbind,
}
