"""The one owner of a client connection: it takes the protocol's commands, calls the
broker model, and owns the connection's output.

`ClientConnection` drives the sans-IO `Connection` (bytes in, commands out), answers each
command through the broker (it is the AMQP 0-9-1 frontend of `broker.frontend`; it runs
AMQP methods through the class handlers, so it holds the concrete session), and is
the only place where the broker's `ChannelError` and `AMQPConnectionError` become AMQP
closes. It is also the broker's `Sink` for this connection: deliveries, replies and
confirms are encoded with the struct codec straight into its output buffer, which
`owner.OwnerBase` holds, counts (`writable`) and hands to the transport once per pass
(`take_output`), as it does for every protocol's owner. It does no IO itself: `server.py`
reads and writes around it and talks to nothing else.

Ordering rule: the reply to a client method goes out before the server-initiated frames
the method causes (a Basic.Cancel for a deleted queue, a channel closed by the server).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from typing import Any

from pamqp import commands

from amqpbroker import errors
from amqpbroker.broker.broker import Broker
from amqpbroker.broker.consumer import Consumer, ReplyConsumer
from amqpbroker.broker.handlers import DISPATCH
from amqpbroker.broker.message import HeadersDecoder, Message
from amqpbroker.protocol.amqp import fastcodec
from amqpbroker.protocol.amqp.commands import (
    ChannelClosed,
    ChannelOpened,
    Command,
    ConnectionClosed,
    HeartbeatDue,
    LoginRequested,
    MethodReceived,
    OpenRequested,
    Publish,
    SecretUpdated,
    Send,
)
from amqpbroker.protocol.amqp.connection import Connection, Limits
from amqpbroker.protocol.amqp.framing import encode_method
from amqpbroker.protocol.amqp.spec import (
    CLASS_BASIC,
    HEARTBEAT_FRAME,
    METHOD_BASIC_PUBLISH,
    split_index,
)
from amqpbroker.transport.owner import OwnerBase

log = logging.getLogger("amqpbroker.connection")

CAPABILITIES = {
    "publisher_confirms": True,
    "exchange_exchange_bindings": True,
    "basic.nack": True,
    "consumer_cancel_notify": True,
    "connection.blocked": True,
    "consumer_priorities": True,
    "authentication_failure_close": True,
    "per_consumer_qos": True,
    "direct_reply_to": True,
}


_SHARED: dict[object, object] = {}
_SHARED_MAX = 4096


def _shared(value: Any) -> Any:
    """One copy of values that recur across messages (routing keys, identical content
    headers), so a deep queue keeps each of them once; bounded, simply reset when full."""
    found = _SHARED.get(value)
    if found is not None:
        return found
    if len(_SHARED) >= _SHARED_MAX:
        _SHARED.clear()
    _SHARED[value] = value
    return value


def build_message(exchange: str, routing_key: str, header: bytes, body: bytes,
                  info: fastcodec.HeaderInfo | None = None,
                  decoder: HeadersDecoder = fastcodec.decode_headers) -> Message:
    """A broker message from a content header payload and body (scanned unless given)."""
    if info is None:
        info = fastcodec.scan_header(header)
    return Message(exchange, _shared(routing_key), _shared(header), body, info.delivery_mode,
                   info.priority, info.expiration, info.headers_span, info.user_id, decoder)


class ClientConnection(OwnerBase):
    """One client: its protocol state, its broker session and its output buffer."""

    HEARTBEAT_DUE = HeartbeatDue
    HEARTBEAT = HEARTBEAT_FRAME

    def __init__(self, broker: Broker, limits: Limits, *, peer: str, now: float,
                 wake: Callable[[], None], rearm: Callable[[], None], loopback: bool = True,
                 external_user: str | None = None) -> None:
        super().__init__(broker, peer=peer, wake=wake, rearm=rearm, loopback=loopback)
        self.protocol = self.wire = Connection(capabilities=CAPABILITIES, limits=limits,
                                               now=now, external_user=external_user)
        self.decode_headers: HeadersDecoder = functools.partial(
            fastcodec.decode_headers, max_depth=limits.max_table_depth)
        self.told_blocked = False
        self.replying = False  # a client method is running: notifications wait for it
        self.deferred: list[Callable[[], None]] = []

    # --- commands ------------------------------------------------------------------------

    def _run(self, commands_in: Iterator[Command]) -> None:
        """Handle each command of a pass, in order."""
        for command in commands_in:
            kind = type(command)
            if kind is Publish:
                self._publish(command)  # type: ignore[arg-type]
            elif kind is MethodReceived:
                self._method(command)  # type: ignore[arg-type]
            else:
                _COMMANDS[kind](self, command)

    def _publish(self, command: Publish) -> None:
        session = self.session
        assert session is not None
        self.publisher = True
        args = command.args
        try:
            session.channels[command.channel].publish(args, build_message(
                args[0], args[1], command.header, command.body, command.info,
                self.decode_headers))
        except errors.ChannelError as exc:
            self._channel_failed(command.channel, exc.at(CLASS_BASIC, METHOD_BASIC_PUBLISH))
        except errors.AMQPConnectionError as exc:
            self._fail(exc.at(CLASS_BASIC, METHOD_BASIC_PUBLISH))

    def _method(self, command: MethodReceived) -> None:
        """Run a client method. Its reply (or the channel close its error causes) goes out
        first; server-initiated frames it caused (cancels, closes) follow."""
        session = self.session
        assert session is not None
        channel, index, args = command
        handler = DISPATCH.get(index)
        if session.vhost.ready:
            session.vhost.ready.dispatch()  # publishes before this method reach consumers
        self.replying = True
        try:
            if handler is None:
                raise errors.AMQPConnectionError(errors.COMMAND_INVALID, "unimplemented method")
            handler(session.channels[channel], args)
        except errors.ChannelError as exc:
            self._channel_failed(channel, exc.at(*split_index(index)))
        except errors.AMQPConnectionError as exc:
            self.deferred.clear()  # the connection closes: nothing else goes out
            self._fail(exc.at(*split_index(index)))
            return
        finally:
            self.replying = False
        if self.deferred:
            deferred, self.deferred = self.deferred, []
            for action in deferred:
                action()

    def _send(self, command: Send) -> None:
        self._append(command.data)

    def _login(self, command: LoginRequested) -> None:
        if self.broker.authenticate(command.username, command.password, self.loopback):
            self._append(self.protocol.accept_login())
            return
        log.warning("%s: authentication failed for user %r (%s)", self.peer, command.username,
                    command.mechanism)
        self._append(self.protocol.refuse_login())

    def _open(self, command: OpenRequested) -> None:
        proto = self.protocol
        try:
            session = self.broker.open_session(
                command.vhost, proto.username, self,
                cancel_notify=bool(proto.client_capabilities.get("consumer_cancel_notify")))
            if session is None:
                raise errors.vhost_not_found(command.vhost)
        except errors.AMQPConnectionError as exc:
            self._append(proto.refuse_open(exc))
            return
        self.session = session
        self._append(proto.accept_open(command.vhost))
        log.info("%s: connection opened (user %r, vhost %r)", self.peer, proto.username,
                 command.vhost)

    def _update_secret(self, command: SecretUpdated) -> None:
        if not self.broker.update_secret(command.username, command.secret):
            self._fail(errors.secret_refused())
            return
        self._append(self.protocol.accept_secret())
        log.info("%s: secret updated for user %r (%s)", self.peer, command.username,
                 command.reason)

    def _channel_opened(self, command: ChannelOpened) -> None:
        assert self.session is not None
        self._append(command.reply)
        self.session.open_channel(command.channel)

    def _channel_closed(self, command: ChannelClosed) -> None:
        self._append(command.reply)
        if self.session is not None:
            self.session.close_channel(command.channel)

    def _connection_closed(self, command: ConnectionClosed) -> None:
        self._release()

    # --- errors become closes here -----------------------------------------------------------

    def _channel_failed(self, channel_id: int, error: errors.AMQPError) -> None:
        """Close one channel from the server side and release its broker state."""
        data = self.protocol.close_channel(channel_id, error)
        if data:
            self._append(data)
            if self.session is not None:
                self.session.close_channel(channel_id)

    def _fail(self, error: errors.AMQPError) -> None:
        """Close the connection from the server side and release its session."""
        data = self.protocol.close(error)
        if data:
            self._append(data)
        self._release()
        self.wake()

    def _release(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            session.close()

    # --- broker Sink -----------------------------------------------------------------------

    def send_method(self, channel_id: int, method: Any) -> None:
        self._append(encode_method(channel_id, method))

    def notify(self, channel_id: int, method: Any) -> None:
        frame = encode_method(channel_id, method)
        if self.replying:
            self.deferred.append(functools.partial(self._append, frame))
        else:
            self._append(frame)

    def send_content(self, channel_id: int, method: Any, message: Message) -> None:
        self._append(encode_method(channel_id, method) + fastcodec.encode_content(
            channel_id, message.header, message.body, self.protocol.frame_max))

    def send_deliver(self, channel_id: int, consumer: Consumer | ReplyConsumer,
                     delivery_tag: int, redelivered: bool, message: Message) -> None:
        self._append(fastcodec.encode_deliver(
            channel_id, consumer.tag_bytes, delivery_tag, redelivered,
            message.exchange.encode(), message.routing_key.encode(), message.header,
            message.body, self.protocol.frame_max))

    def send_confirm(self, channel_id: int, delivery_tag: int, multiple: bool,
                     ack: bool) -> None:
        if ack:
            self._append(fastcodec.encode_ack(channel_id, delivery_tag, multiple))
        else:
            self._append(fastcodec.encode_nack(channel_id, delivery_tag, multiple, True))

    def close_channel(self, channel_id: int, error: errors.AMQPError) -> None:
        if self.replying:
            self.deferred.append(functools.partial(self.close_channel, channel_id, error))
            return
        self._channel_failed(channel_id, error)
        self.wake()

    # --- resource alarms (connection.blocked) --------------------------------------------

    def set_blocked(self, blocked: bool) -> None:
        """A resource alarm was raised or cleared broker-wide: hold publishes back (the
        protocol stops at the next Basic.Publish) or let them through again."""
        self.protocol.hold_publishes = blocked
        if blocked:
            if self.publisher:
                self.tell_blocked()
        elif self.told_blocked:
            self.told_blocked = False
            self.send_method(0, commands.Connection.Unblocked())

    def tell_blocked(self) -> None:
        """Send connection.blocked once, if the client understands it."""
        if not self.told_blocked and self.protocol.client_capabilities.get("connection.blocked"):
            self.told_blocked = True
            resource = "disk" if "disk" in self.broker.alarms else "memory"
            self.send_method(0, commands.Connection.Blocked(reason=f"low on {resource}"))

    @property
    def paused(self) -> bool:
        """A publish is held back by an alarm: stop reading this connection."""
        return self.protocol.paused

    def resume(self, now: float) -> None:
        """The alarm cleared: process the held publishes, then read again."""
        self._resume_pass(self.protocol.resume(now))

    # --- ending the connection ----------------------------------------------------------

    def internal_error(self) -> None:
        """An unexpected exception in this connection's work: log it once, end only this
        connection with 541."""
        log.exception("%s: internal error, closing the connection", self.peer)
        self._fail(errors.AMQPConnectionError(errors.INTERNAL_ERROR, "internal error"))

    def shutdown_on_error(self, reason: str) -> None:
        self._fail(errors.AMQPConnectionError(errors.INTERNAL_ERROR, reason))

    def shutdown(self, reason: str, code: int = errors.CONNECTION_FORCED) -> None:
        """Close the connection from the server side (320 CONNECTION_FORCED unless told)."""
        self._fail(errors.AMQPConnectionError(code, reason))


_COMMANDS: dict[type, Callable[[ClientConnection, Any], None]] = {
    Send: ClientConnection._send,
    LoginRequested: ClientConnection._login,
    OpenRequested: ClientConnection._open,
    SecretUpdated: ClientConnection._update_secret,
    ChannelOpened: ClientConnection._channel_opened,
    ChannelClosed: ClientConnection._channel_closed,
    ConnectionClosed: ClientConnection._connection_closed,
}
