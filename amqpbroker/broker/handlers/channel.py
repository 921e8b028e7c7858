"""Channel class methods the broker answers (open and close are connection bookkeeping)."""

from __future__ import annotations

from collections.abc import Callable

from pamqp import commands

from amqpbroker import errors
from amqpbroker.broker.channel import Channel


def flow(channel: Channel, method: commands.Channel.Flow) -> None:
    if not method.active:
        raise errors.not_implemented("active=false")
    channel.sink.send_method(channel.id, commands.Channel.FlowOk(active=True))


HANDLERS: dict[int, Callable[..., None]] = {commands.Channel.Flow.index: flow}
