"""Tx class: publishes and acks held until commit, dropped at rollback."""

from __future__ import annotations

from collections.abc import Callable

from pamqp import commands

from amqpbroker import errors
from amqpbroker.broker.channel import Channel
from amqpbroker.broker.handlers.basic import route_and_enqueue


def _not_transactional() -> errors.ChannelError:
    return errors.ChannelError(errors.PRECONDITION_FAILED, "channel is not transactional")


def select(channel: Channel, method: commands.Tx.Select) -> None:
    if channel.confirm:
        raise errors.ChannelError(errors.PRECONDITION_FAILED,
                                  "cannot switch from confirm to tx mode")
    if channel.tx is None:
        channel.tx = []
    channel.sink.send_method(channel.id, commands.Tx.SelectOk())


def commit(channel: Channel, method: commands.Tx.Commit) -> None:
    pending = channel.tx
    if pending is None:
        raise _not_transactional()
    channel.tx = None
    try:
        for kind, args in pending:
            if kind == "publish":
                route_and_enqueue(channel, *args)
            elif kind == "ack":
                channel.ack(*args)
            else:
                channel.reject(*args)
    finally:
        channel.tx = []
    channel.sink.send_method(channel.id, commands.Tx.CommitOk())


def rollback(channel: Channel, method: commands.Tx.Rollback) -> None:
    if channel.tx is None:
        raise _not_transactional()
    channel.tx = []
    channel.sink.send_method(channel.id, commands.Tx.RollbackOk())


HANDLERS: dict[int, Callable[..., None]] = {
    commands.Tx.Select.index: select,
    commands.Tx.Commit.index: commit,
    commands.Tx.Rollback.index: rollback,
}
