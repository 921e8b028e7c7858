"""The meeting point of one connection's protocol state and the broker.

`ClientConnection` implements the protocol's `Handler` (commands in) and the broker's
`Sink` (frames out, encoded with the struct codec straight into the output buffer). It
does no IO itself: the transport reads and writes around it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from pamqp import commands

from amqpbroker import errors
from amqpbroker.broker.broker import Broker
from amqpbroker.broker.consumer import Consumer
from amqpbroker.broker.handlers import DISPATCH, publish
from amqpbroker.broker.message import HeadersDecoder, Message
from amqpbroker.broker.session import Session
from amqpbroker.protocol import fastcodec
from amqpbroker.protocol.connection import Connection, Limits
from amqpbroker.protocol.framing import encode_method

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

OUTBOUND_LIMIT = 4 * 1024 * 1024


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


class ClientConnection:
    """One client: protocol state machine, broker session, output buffer."""

    def __init__(self, broker: Broker, limits: Limits, peer: str, now: float,
                 wake: Callable[[], None], rearm: Callable[[], None],
                 loopback: bool = True, external_user: str | None = None) -> None:
        self.broker = broker
        self.peer = peer
        self.loopback = loopback
        self.protocol = Connection(self, CAPABILITIES, limits, now, external_user)
        self.decode_headers: HeadersDecoder = functools.partial(
            fastcodec.decode_headers, max_depth=limits.max_table_depth)
        self.session: Session | None = None
        self.wake = wake
        self.rearm = rearm
        self.buffered = 0
        self.was_full = False
        self.publisher = False
        self.held = False  # output waits for the store's fsync
        self.told_blocked = False
        self.replying = False  # a client method is running: notifications wait for it
        self.deferred: list[Callable[[], None]] = []

    # --- protocol Handler ------------------------------------------------------------------

    def authenticate(self, mechanism: str, username: str, password: str | None) -> bool:
        if self.broker.authenticate(username, password, self.loopback):
            return True
        log.warning("%s: authentication failed for user %r (%s)", self.peer, username, mechanism)
        return False

    def update_secret(self, username: str, secret: bytes, reason: str) -> None:
        if not self.broker.access.update_secret(username, secret):
            raise errors.secret_refused()
        log.info("%s: secret updated for user %r (%s)", self.peer, username, reason)

    def open_vhost(self, vhost: str) -> None:
        proto = self.protocol
        session = self.broker.open_session(
            vhost, proto.username, self,
            bool(proto.client_capabilities.get("consumer_cancel_notify")))
        if session is None:
            raise errors.vhost_not_found(vhost)
        self.session = session
        log.info("%s: connection opened (user %r, vhost %r)", self.peer, proto.username, vhost)

    def on_channel_open(self, channel: int) -> None:
        assert self.session is not None
        self.session.open_channel(channel)

    def on_channel_closed(self, channel: int) -> None:
        if self.session is not None:
            self.session.close_channel(channel)

    def on_method(self, channel: int, index: int, args: Any) -> None:
        """Run a client method. Its reply (or the channel close its error causes) goes out
        first; server-initiated frames it caused (cancels, closes) follow."""
        assert self.session is not None
        handler = DISPATCH.get(index)
        if handler is None:
            raise errors.ConnectionError_(errors.COMMAND_INVALID, "unimplemented method")
        self.replying = True
        try:
            handler(self.session.channels[channel], args)
        except errors.ChannelError as exc:
            self.protocol.close_channel(channel, exc.at(index >> 16, index & 0xFFFF))
        except errors.ConnectionError_:
            self.deferred.clear()  # the connection closes: nothing else goes out
            raise
        finally:
            self.replying = False
        if self.deferred:
            deferred, self.deferred = self.deferred, []
            for action in deferred:
                action()

    def on_publish(self, channel: int, args: tuple[str, str, bool, bool], header: bytes,
                   info: fastcodec.HeaderInfo, body: bytes) -> None:
        assert self.session is not None
        self.publisher = True
        publish(self.session.channels[channel], args, build_message(
            args[0], args[1], header, body, info, self.decode_headers))

    def on_closed(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            session.close()

    # --- broker Sink -----------------------------------------------------------------------

    def _append(self, data: bytes) -> None:
        out = self.protocol.out
        if not out:
            self.wake()
        out.append(data)
        self.buffered += len(data)

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

    def send_deliver(self, channel_id: int, consumer: Consumer, delivery_tag: int,
                     redelivered: bool, message: Message) -> None:
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
        self.protocol.close_channel(channel_id, error)
        self.wake()

    def memory(self) -> int:
        """Bytes this connection holds: output not yet sent, input not yet parsed, and its
        unacknowledged deliveries."""
        held = self.buffered + len(self.protocol.buffer)
        return held + self.session.unacked_memory() if self.session is not None else held

    def writable(self) -> bool:
        if self.buffered < OUTBOUND_LIMIT:
            return True
        self.was_full = True
        return False

    # --- driven by the transport --------------------------------------------------------

    def receive(self, data: bytes, now: float) -> None:
        """One read pass: parse and dispatch everything, then send coalesced confirms."""
        state = self.protocol.state
        try:
            self.protocol.receive_data(data, now)
            if self.session is not None:
                self.session.end_of_pass()
        except Exception:
            self.internal_error()
        if self.protocol.out:
            self.wake()
        if self.protocol.state != state:
            self.rearm()

    def take_output(self, now: float) -> bytes:
        data = self.protocol.data_to_send(now)
        self.buffered = 0
        return data

    def drained(self) -> None:
        """The socket took everything: consumers blocked on a full buffer may go on."""
        if self.was_full and self.session is not None:
            self.was_full = False
            try:
                self.session.resume()
            except Exception:
                self.internal_error()

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
        self.protocol.resume(now)
        if self.session is not None:
            self.session.end_of_pass()
        self.wake()

    def internal_error(self) -> None:
        """An unexpected exception in this connection's work: log it once, end only this
        connection with 541."""
        log.exception("%s: internal error, closing the connection", self.peer)
        self.shutdown_on_error("internal error")

    def shutdown_on_error(self, reason: str) -> None:
        self.protocol.close(errors.ConnectionError_(errors.INTERNAL_ERROR, reason))
        self.wake()

    def shutdown(self, reason: str) -> None:
        self.protocol.close(errors.ConnectionError_(errors.CONNECTION_FORCED, reason))
        self.wake()
