"""One module per AMQP class: (channel state, method) -> output through the channel's sink.

`DISPATCH` maps a method index (class_id << 16 | method_id) to its handler.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from amqpbroker.broker.channel import Channel
from amqpbroker.broker.handlers import basic, channel, confirm, exchange, queue, tx

Handler = Callable[[Channel, Any], None]

DISPATCH: dict[int, Handler] = {
    **channel.HANDLERS,
    **exchange.HANDLERS,
    **queue.HANDLERS,
    **basic.HANDLERS,
    **confirm.HANDLERS,
    **tx.HANDLERS,
}

publish = basic.publish

__all__ = ["DISPATCH", "publish"]
