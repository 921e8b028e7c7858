"""Confirm class: publisher confirms."""

from __future__ import annotations

from collections.abc import Callable

from pamqp import commands

from amqpbroker import errors
from amqpbroker.broker.channel import Channel


def select(channel: Channel, method: commands.Confirm.Select) -> None:
    if channel.tx is not None:
        raise errors.ChannelError(errors.PRECONDITION_FAILED,
                                  "cannot switch from tx to confirm mode")
    channel.confirm = True
    if not method.nowait:
        channel.sink.send_method(channel.id, commands.Confirm.SelectOk())


HANDLERS: dict[int, Callable[..., None]] = {commands.Confirm.Select.index: select}
