"""What a protocol frontend needs from the broker model, written down as Protocol classes.

A frontend is the owner of one client connection in one wire protocol (AMQP 0-9-1 in
`transport/bridge.py`; MQTT and STOMP next). It logs a user in and opens a session on a
vhost (`BrokerModel`), opens channels on the session (`SessionModel`), and on a channel
publishes, consumes with credit and acks, declares and binds (`ChannelModel`). The broker
answers and delivers through the frontend's `Sink`, which never blocks: `writable()` False
is backpressure (the queue keeps its messages until `SessionModel.resume`).

`Broker`, `Session` and `Channel` implement these structurally; mypy checks it
(`_implementations`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from amqpbroker import errors
    from amqpbroker.broker.broker import Broker
    from amqpbroker.broker.channel import Channel
    from amqpbroker.broker.consumer import Consumer, ReplyConsumer
    from amqpbroker.broker.dispatch import ReadyQueues
    from amqpbroker.broker.message import Message
    from amqpbroker.broker.session import Session


class Sink(Protocol):
    """What the broker asks of a connection: encode and buffer, never block."""

    def send_method(self, channel_id: int, method: Any) -> None: ...
    def notify(self, channel_id: int, method: Any) -> None:
        """A server-initiated method (Basic.Cancel): it goes out after the reply to the
        client method that caused it."""
    def send_content(self, channel_id: int, method: Any, message: Message) -> None: ...
    def send_deliver(self, channel_id: int, consumer: Consumer | ReplyConsumer,
                     delivery_tag: int, redelivered: bool, message: Message) -> None: ...
    def send_confirm(self, channel_id: int, delivery_tag: int, multiple: bool,
                     ack: bool) -> None: ...
    def close_channel(self, channel_id: int, error: errors.AMQPError) -> None:
        """Close a channel from the server side (after any reply being made)."""
    def writable(self) -> bool:
        """False: the output buffer is full, deliver nothing more for now."""
    def internal_error(self) -> None:
        """Handing this connection its output failed: end this connection (541), and
        only this one."""


class ChannelModel(Protocol):
    """One channel of a session: where publishes, consumers and acks live."""

    def publish(self, args: tuple[str, str, bool, bool], message: Message) -> None:
        """Publish `message` to exchange `args[0]` with routing key `args[1]` (`args[2]`:
        mandatory, `args[3]`: immediate); confirmed through the sink in confirm mode."""
    def select_confirms(self) -> None:
        """Confirm every later publish (publisher confirms)."""
    def consume(self, queue: str, *, tag: str = "", no_ack: bool = False,
                exclusive: bool = False, arguments: dict[str, Any] | None = None) -> None:
        """Subscribe; deliveries come through the sink as long as credit lasts."""
    def set_credit(self, prefetch: int, *, whole_channel: bool = False) -> None:
        """Unacknowledged deliveries allowed per consumer (or for the whole channel)."""
    def cancel(self, tag: str) -> Consumer | ReplyConsumer | None: ...
    def ack(self, tag: int, multiple: bool) -> None: ...
    def reject(self, tag: int, multiple: bool, requeue: bool) -> None: ...
    def declare_queue(self, name: str, *, durable: bool = False, exclusive: bool = False,
                      auto_delete: bool = False,
                      arguments: dict[str, Any] | None = None) -> None: ...
    def declare_exchange(self, name: str, exchange_type: str, *, durable: bool = False,
                         auto_delete: bool = False,
                         arguments: dict[str, Any] | None = None) -> None: ...
    def bind_queue(self, queue: str, exchange: str, routing_key: str = "",
                   arguments: dict[str, Any] | None = None) -> None: ...
    def unbind_queue(self, queue: str, exchange: str, routing_key: str = "",
                     arguments: dict[str, Any] | None = None) -> None: ...
    def delete_queue(self, name: str) -> None: ...


class VhostModel(Protocol):
    """The part of a vhost a frontend touches directly."""

    ready: ReadyQueues


class SessionModel(Protocol):
    """The broker side of one connection, open on one vhost as one user."""

    @property
    def vhost(self) -> VhostModel: ...
    @property
    def channels(self) -> Mapping[int, ChannelModel]: ...
    def open_channel(self, channel_id: int) -> ChannelModel: ...
    def close_channel(self, channel_id: int) -> None: ...
    def end_of_pass(self) -> None:
        """After each read pass: deliver to the queues that became ready, then send the
        coalesced publisher confirms."""
    def resume(self) -> None:
        """The sink is writable again."""
    def unacked_memory(self) -> int: ...
    def close(self) -> None: ...


class BrokerModel(Protocol):
    """The broker as a frontend sees it."""

    @property
    def alarms(self) -> set[str]: ...
    @property
    def vhost_deleted_listeners(self) -> list[Callable[[str], None]]:
        """Called with a vhost's name once it is deleted, its connections closed: what a
        frontend keeps of the vhost beyond the model (e.g. MQTT retained messages) goes."""
    def authenticate(self, username: str, password: str | None, loopback: bool) -> bool: ...
    def update_secret(self, username: str, secret: bytes) -> bool: ...
    def open_session(self, vhost_name: str, username: str, sink: Sink, *,
                     cancel_notify: bool) -> SessionModel | None:
        """A session on the vhost, None when there is no such vhost; raises 530 when the
        user may not use it."""


if TYPE_CHECKING:

    def _implementations(broker: Broker, session: Session, channel: Channel
                         ) -> tuple[BrokerModel, SessionModel, ChannelModel]:
        """For mypy only: the broker model implements the frontend interface."""
        return broker, session, channel
