"""The owner of a STOMP connection: it takes the STOMP protocol's commands, calls the
broker model through `broker.frontend`'s interface, and owns the connection's output.

`StompClient` is the `owner.Owner` the server drives (an `owner.OwnerBase`, which holds
its output and its read pass) and the broker's `Sink`. A
CONNECT logs in (no `login`: guest/guest) and opens a session on the vhost named by
`host` (default `/`) with one channel, which every subscription shares, as RabbitMQ's
plugin does. SEND builds the broker message once (`stomp_headers.build_message`) and
publishes it to where its destination says (`stomp_destinations`); SUBSCRIBE declares and
binds what the destination needs and consumes; ACK and NACK settle by the delivery tag
in the `message-id`. BEGIN holds SEND, ACK and NACK until COMMIT replays them. A SEND
with `receipt` puts the channel in confirm mode and gets its RECEIPT with the publisher
confirm; other frames get theirs once handled.

Every error (bad input, or a broker error such as `not_found`) becomes an ERROR frame
with a `message` header, and then the connection closes; only this connection.
"""

from __future__ import annotations

import base64
import collections
import itertools
import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

from pamqp import commands

from amqpbroker import __version__, errors
from amqpbroker.broker.broker import Broker
from amqpbroker.broker.channel import Channel
from amqpbroker.broker.consumer import Consumer, ReplyConsumer
from amqpbroker.broker.handlers import queue as queue_handlers
from amqpbroker.broker.message import Message
from amqpbroker.protocol.amqp.connection import Limits
from amqpbroker.protocol.stomp.commands import Command, ConnectRequested, Failed, HeartbeatDue
from amqpbroker.protocol.stomp.connection import StompConnection
from amqpbroker.protocol.stomp.frames import V12, Frame, FrameLimits, encode, header_lines
from amqpbroker.transport import stomp_destinations as destinations
from amqpbroker.transport.owner import OwnerBase
from amqpbroker.transport.stomp_headers import build_message, message_headers

log = logging.getLogger("amqpbroker.stomp")

SERVER = "amqpbroker/" + __version__
DEFAULT_LOGIN = ("guest", "guest")
DEFAULT_VHOST = "/"
CHANNEL = 1
ACK_MODES = ("auto", "client", "client-individual")
STRING_ARGUMENTS = ("x-dead-letter-exchange", "x-dead-letter-routing-key", "x-queue-type")
INTEGER_ARGUMENTS = ("x-expires", "x-max-length", "x-max-length-bytes", "x-max-priority",
                     "x-message-ttl")

_DESTINATIONS: dict[tuple[str, str, str], bytes] = {}
_DESTINATIONS_MAX = 4096


class StompError(Exception):
    """Bad input: the ERROR frame's `message` and body."""

    def __init__(self, message: str, detail: str) -> None:
        super().__init__(detail)
        self.message = message
        self.detail = detail


class Subscription:
    """One SUBSCRIBE (or a temp queue's consumer): its consumer tag, ack mode, queue,
    and the encoded start of its MESSAGE frames."""

    __slots__ = ("ack", "ack_header", "durable_queue", "ident", "prefix", "queue", "tag")

    def __init__(self, tag: str, subscription_id: str | None, ack: str, queue: str,
                 session_name: str, version: str, *, durable_queue: bool = False) -> None:
        self.tag = tag
        self.ack = ack
        self.queue = queue
        self.durable_queue = durable_queue  # UNSUBSCRIBE durable:true deletes it
        headers = [] if subscription_id is None else [("subscription", subscription_id)]
        self.prefix = b"MESSAGE\n" + header_lines(headers, version)
        self.ident = header_lines([("", tag + "@@" + session_name + "@@")], version)[1:-1]
        self.ack_header = version == V12 and ack != "auto"


def _flag(headers: dict[str, str], name: str, default: bool) -> bool:
    value = headers.get(name)
    if value in ("true", "True"):
        return True
    if value in ("false", "False"):
        return False
    return default


def _destination_line(exchange: str, routing_key: str, version: str) -> bytes:
    key = (exchange, routing_key, version)
    line = _DESTINATIONS.get(key)
    if line is None:
        if len(_DESTINATIONS) >= _DESTINATIONS_MAX:
            _DESTINATIONS.clear()
        line = _DESTINATIONS[key] = header_lines(
            [("destination", destinations.of_message(exchange, routing_key))], version)
    return line


def _queue_arguments(headers: dict[str, str]) -> dict[str, Any]:
    arguments: dict[str, Any] = {}
    for name in STRING_ARGUMENTS:
        if name in headers:
            arguments[name] = headers[name]
    for name in INTEGER_ARGUMENTS:
        value = headers.get(name)
        if value is not None:
            if not (value.isascii() and value.lstrip("-").isdigit()):
                raise StompError("Invalid header", f"'{name}' must be an integer\n")
            arguments[name] = int(value)
    return arguments


class StompClient(OwnerBase):
    """One STOMP client: its protocol state, its broker session and its output buffer."""

    HEARTBEAT_DUE = HeartbeatDue
    HEARTBEAT = b"\n"

    def __init__(self, broker: Broker, limits: Limits, *, peer: str, now: float,
                 wake: Callable[[], None], rearm: Callable[[], None], loopback: bool = True,
                 external_user: str | None = None) -> None:
        super().__init__(broker, peer=peer, wake=wake, rearm=rearm, loopback=loopback)
        self.protocol = self.wire = StompConnection(
            FrameLimits(max_body=limits.max_message_size), now=now,
            login_timeout=limits.handshake_timeout)
        self.channel: Channel | None = None
        self.session_name = "session-" + base64.urlsafe_b64encode(
            os.urandom(16)).rstrip(b"=").decode()
        self.blocked = False  # a resource alarm holds SEND frames back
        self.pending: tuple[Frame, Iterator[Command]] | None = None
        self.subscriptions: dict[str, Subscription] = {}  # by consumer tag
        self.declared: set[str] = set()
        self.temp_queues: dict[str, str] = {}  # /temp-queue/<id> -> queue name
        self.transactions: dict[str, list[Frame]] = {}
        self.receipts: collections.deque[tuple[int, str]] = collections.deque()

    # --- state the transport reads -----------------------------------------------------

    @property
    def paused(self) -> bool:
        """A SEND is held back by a resource alarm: stop reading this connection."""
        return self.pending is not None

    # --- commands ------------------------------------------------------------------------

    def _run(self, commands_in: Iterator[Command]) -> None:
        for command in commands_in:
            kind = type(command)
            if kind is Frame:
                if self.blocked and command.command == "SEND":  # type: ignore[union-attr]
                    self.pending = (command, commands_in)  # type: ignore[assignment]
                    return
                self._frame(command)  # type: ignore[arg-type]
            elif kind is ConnectRequested:
                self._connect(command)  # type: ignore[arg-type]
            elif kind is Failed:
                if command.data:  # type: ignore[union-attr]
                    self._append(command.data)  # type: ignore[union-attr]
                self._release()

    def _frame(self, frame: Frame) -> None:
        try:
            _FRAMES[frame.command](self, frame)
        except (StompError, destinations.DestinationError) as exc:
            self._error(exc.message, exc.detail, frame)
            return
        except errors.AMQPError as exc:
            self._error(errors.REPLY_NAMES[exc.reply_code].lower(), exc.reply_text, frame)
            return
        receipt = frame.headers.get("receipt")
        if receipt is not None and frame.command != "SEND" and not self.protocol.closed:
            self._receipt(receipt)

    def _connect(self, command: ConnectRequested) -> None:
        login, passcode = DEFAULT_LOGIN if command.login is None else (
            command.login, command.passcode or "")
        vhost = command.host or DEFAULT_VHOST
        if not self.broker.authenticate(login, passcode, self.loopback):
            log.warning("%s: STOMP authentication failed for user %r", self.peer, login)
            self._error("Bad CONNECT", f"Access refused for user '{login}'\n", command.frame)
            return
        try:
            session = self.broker.open_session(vhost, login, self, cancel_notify=True)
        except errors.AMQPConnectionError:
            session = None
        if session is None:
            self._error("Bad CONNECT", f"Virtual host '{vhost}' access denied", command.frame)
            return
        self.session = session
        self.channel = session.open_channel(CHANNEL)
        proto = self.protocol
        self._append(proto.accept_connect(self.session_name, SERVER, proto.last_received,
                                          username=login, vhost=vhost))
        log.info("%s: STOMP %s connection opened (user %r, vhost %r)", self.peer,
                 command.version, login, vhost)

    # --- frames --------------------------------------------------------------------------

    def _send(self, frame: Frame) -> None:
        if self._transactional(frame):
            receipt = frame.headers.get("receipt")
            if receipt is not None:
                self._receipt(receipt)
            return
        self._publish(frame, receipt=frame.headers.get("receipt"))

    def _publish(self, frame: Frame, receipt: str | None) -> None:
        channel = self._channel()
        headers = frame.headers
        text = headers.get("destination")
        if text is None:
            raise StompError("Missing destination",
                             "\"SEND\" must include a 'destination' header\n")
        if "message-id" in headers:
            raise StompError("Invalid header", "'message-id' is not allowed on 'SEND'.\n")
        destination = destinations.parse(text)
        if destination.kind == destinations.TEMP_QUEUE:
            raise StompError("Invalid destination",
                             f"'{text}' is not a valid destination for 'SEND'\n")
        if destination.kind == destinations.QUEUE:
            self._declare(destination.name, headers)
        reply_to = headers.get("reply-to")
        rewritten = None
        if reply_to is not None and reply_to.startswith("/temp-queue/"):
            rewritten = self._temp_queue(reply_to)
        exchange, routing_key = destination.publish_target
        try:
            message = build_message(exchange, routing_key, headers, frame.body, rewritten)
        except ValueError as exc:
            raise StompError("Invalid header", str(exc)) from None
        if receipt is not None and not channel.confirm:
            channel.select_confirms()
        self.publisher = True
        channel.publish((exchange, routing_key, False, False), message)
        if receipt is not None:
            self.receipts.append((channel.publish_seq, receipt))

    def _declare(self, name: str, headers: dict[str, str]) -> None:
        """`/queue/<name>`: declared durable once per connection (headers may say
        otherwise)."""
        if name in self.declared:
            return
        self._channel().declare_queue(
            name, durable=_flag(headers, "durable", _flag(headers, "persistent", True)),
            auto_delete=_flag(headers, "auto-delete", False),
            exclusive=_flag(headers, "exclusive", False), arguments=_queue_arguments(headers))
        self.declared.add(name)

    def _temp_queue(self, text: str) -> str:
        """The queue behind a `/temp-queue/<id>` reply address, made on first use."""
        name = self.temp_queues.get(text)
        if name is None:
            channel = self._channel()
            channel.declare_queue("", exclusive=True, auto_delete=True)
            name = channel.last_queue
            tag = "T_" + text
            self.subscriptions[tag] = Subscription(tag, text, "auto", name, self.session_name,
                                                   self.protocol.version)
            channel.consume(name, tag=tag, no_ack=True)
            self.temp_queues[text] = name
        return name

    def _subscribe(self, frame: Frame) -> None:
        channel = self._channel()
        headers = frame.headers
        text = headers.get("destination")
        if text is None:
            raise StompError("Missing destination",
                             "\"SUBSCRIBE\" must include a 'destination' header\n")
        destination = destinations.parse(text)
        if destination.kind == destinations.TEMP_QUEUE:
            raise StompError("Invalid destination",
                             f"'{text}' is not a valid destination for 'SUBSCRIBE'\n")
        ack = headers.get("ack", "auto")
        if ack not in ACK_MODES:
            raise StompError("Invalid header", f"'{ack}' is not a valid ack mode\n")
        subscription_id = headers.get("id")
        tag = "T_" + subscription_id if subscription_id is not None else "Q_" + text
        if tag in self.subscriptions:
            raise StompError("Duplicated subscription identifier",
                             f"A subscription identified by '{tag}' already exists.")
        prefetch = headers.get("prefetch-count")
        if prefetch is not None:
            if not (prefetch.isascii() and prefetch.isdigit()):
                raise StompError("Invalid header", "'prefetch-count' must be an integer\n")
            channel.set_credit(int(prefetch))
        queue, durable_queue = self._subscription_queue(destination, headers, subscription_id)
        self.subscriptions[tag] = Subscription(tag, subscription_id, ack, queue,
                                               self.session_name, self.protocol.version,
                                               durable_queue=durable_queue)
        try:
            channel.consume(queue, tag=tag, no_ack=ack == "auto")
        except errors.AMQPError:
            del self.subscriptions[tag]
            raise

    def _subscription_queue(self, destination: destinations.Destination,
                            headers: dict[str, str], subscription_id: str | None
                            ) -> tuple[str, bool]:
        """The queue a SUBSCRIBE consumes from (declared and bound as needed), and
        whether it is a durable subscription's."""
        kind = destination.kind
        if kind == destinations.QUEUE:
            self._declare(destination.name, headers)
            return destination.name, False
        if kind in (destinations.AMQ_QUEUE, destinations.REPLY_QUEUE):
            return destination.name, False
        durable = _flag(headers, "durable", _flag(headers, "persistent", False))
        if durable and subscription_id is None:
            raise StompError("Missing Header", "Header 'id' is required for durable "
                             "subscriptions")
        exchange, routing_key = destination.publish_target
        name = headers.get("x-queue-name") or destinations.subscription_queue(
            routing_key if kind == destinations.TOPIC else exchange,
            subscription_id if durable else None)
        channel = self._channel()
        channel.declare_queue(name, durable=durable,
                              auto_delete=_flag(headers, "auto-delete", True),
                              exclusive=_flag(headers, "exclusive", False),
                              arguments=_queue_arguments(headers))
        channel.bind_queue(name, exchange, routing_key)
        return name, durable

    def _unsubscribe(self, frame: Frame) -> None:
        headers = frame.headers
        subscription_id = headers.get("id")
        if subscription_id is not None:
            tag = "T_" + subscription_id
        elif "destination" in headers:
            tag = "Q_" + headers["destination"]
        else:
            raise StompError("Missing destination or id",
                             "UNSUBSCRIBE must include a 'destination' or 'id' header\n")
        subscription = self.subscriptions.pop(tag, None)
        if subscription is None:
            raise StompError("Subscription not found",
                             f"Subscription to '{tag}' not found")
        channel = self._channel()
        channel.cancel(tag)
        if subscription.durable_queue and _flag(headers, "durable",
                                                _flag(headers, "persistent", False)):
            queue_handlers.delete(channel, commands.Queue.Delete(
                queue=subscription.queue, nowait=True))

    def _settled(self, frame: Frame) -> tuple[Subscription, int]:
        """The subscription and delivery tag an ACK or NACK names."""
        name = "id" if self.protocol.version == V12 else "message-id"
        text = frame.headers.get(name, "")
        parts = text.rsplit("@@", 2)
        if len(parts) != 3 or not (parts[2].isascii() and parts[2].isdigit()):
            raise StompError("Invalid header",
                             f"\"{frame.command}\" must include a valid \"{name}\" header\n")
        subscription = self.subscriptions.get(parts[0])
        if subscription is None:
            raise StompError("Subscription not found",
                             f"Message with id \"{text}\" has no subscription")
        return subscription, int(parts[2])

    def _ack(self, frame: Frame) -> None:
        subscription, tag = self._settled(frame)
        if not self._transactional(frame):
            self._channel().ack(tag, subscription.ack == "client")

    def _nack(self, frame: Frame) -> None:
        subscription, tag = self._settled(frame)
        if not self._transactional(frame):
            self._channel().reject(tag, subscription.ack == "client",
                                   frame.headers.get("requeue") not in ("false", "False"))

    def _transactional(self, frame: Frame) -> bool:
        """Whether the frame belongs to a transaction (and is now held in it)."""
        transaction = frame.headers.get("transaction")
        if transaction is None:
            return False
        self._transaction(transaction).append(frame)
        return True

    def _transaction(self, transaction: str) -> list[Frame]:
        frames = self.transactions.get(transaction)
        if frames is None:
            raise StompError("Bad transaction",
                             f"Invalid transaction identifier: \"{transaction}\"\n")
        return frames

    def _transaction_name(self, frame: Frame) -> str:
        transaction = frame.headers.get("transaction")
        if transaction is None:
            raise StompError("Missing transaction",
                             f"\"{frame.command}\" must include a 'transaction' header\n")
        return transaction

    def _begin(self, frame: Frame) -> None:
        transaction = self._transaction_name(frame)
        if transaction in self.transactions:
            raise StompError("Bad transaction",
                             f"Transaction \"{transaction}\" has already begun\n")
        self.transactions[transaction] = []

    def _commit(self, frame: Frame) -> None:
        transaction = self._transaction_name(frame)
        held = self._transaction(transaction)
        del self.transactions[transaction]
        channel = self._channel()
        for command in held:
            if command.command == "SEND":
                self._publish(command, receipt=None)
                continue
            subscription, tag = self._settled(command)
            if command.command == "ACK":
                channel.ack(tag, subscription.ack == "client")
            else:
                channel.reject(tag, subscription.ack == "client",
                               command.headers.get("requeue") not in ("false", "False"))

    def _abort(self, frame: Frame) -> None:
        transaction = self._transaction_name(frame)
        self._transaction(transaction)
        del self.transactions[transaction]

    def _disconnect(self, frame: Frame) -> None:
        receipt = frame.headers.get("receipt")
        if receipt is not None:
            self._receipt(receipt)
        self.protocol.close("client disconnected")
        self._release()

    def _channel(self) -> Channel:
        channel = self.channel
        assert channel is not None
        return channel

    # --- errors and closing ----------------------------------------------------------------

    def _receipt(self, receipt: str) -> None:
        self._append(encode("RECEIPT", [("receipt-id", receipt)], b"", self.protocol.version))

    def _error(self, message: str, detail: str, frame: Frame | None = None) -> None:
        """An ERROR frame, then the connection closes and its session is released."""
        receipt = frame.headers.get("receipt") if frame is not None else None
        data = self.protocol.fail(message, detail, receipt)
        if data:
            self._append(data)
        self._release()
        self.wake()

    def _broker_error(self, error: errors.AMQPError) -> None:
        self._error(errors.REPLY_NAMES[error.reply_code].lower(), error.reply_text)

    def _release(self) -> None:
        session, self.session, self.channel = self.session, None, None
        if session is not None:
            session.close()

    # --- broker Sink -----------------------------------------------------------------------

    def send_deliver(self, channel_id: int, consumer: Consumer | ReplyConsumer,
                     delivery_tag: int, redelivered: bool, message: Message) -> None:
        subscription = self.subscriptions[consumer.tag]
        version = self.protocol.version
        ident = subscription.ident + str(delivery_tag).encode()
        body = message.body
        parts = [subscription.prefix,
                 _destination_line(message.exchange, message.routing_key, version),
                 b"message-id:", ident,
                 b"\nredelivered:true\n" if redelivered else b"\nredelivered:false\n"]
        if subscription.ack_header:
            parts += (b"ack:", ident, b"\n")
        parts += (message_headers(message, version), b"content-length:",
                  str(len(body)).encode(), b"\n\n", body, b"\x00")
        self._append(b"".join(parts))

    def send_confirm(self, channel_id: int, delivery_tag: int, multiple: bool,
                     ack: bool) -> None:
        """Publisher confirms become the RECEIPTs of the SEND frames that asked."""
        receipts = self.receipts
        while receipts and receipts[0][0] <= delivery_tag:
            self._receipt(receipts.popleft()[1])

    def send_method(self, channel_id: int, method: Any) -> None:
        """Replies to AMQP methods: the frontend only calls the broker without waiting
        for replies, so there is nothing to send."""

    def send_content(self, channel_id: int, method: Any, message: Message) -> None:
        """Returns and Get-Ok: never asked for (no mandatory publishes, no gets)."""

    def notify(self, channel_id: int, method: Any) -> None:
        """The broker cancelled a consumer (its queue was deleted): an ERROR."""
        if isinstance(method, commands.Basic.Cancel):
            tag = method.consumer_tag or ""
            self.subscriptions.pop(tag, None)
            self._error("Server cancelled subscription",
                        f"The server cancelled the subscription '{tag}'\n")

    def close_channel(self, channel_id: int, error: errors.AMQPError) -> None:
        self._broker_error(error)

    # --- resource alarms ------------------------------------------------------------------

    def set_blocked(self, blocked: bool) -> None:
        """A resource alarm was raised or cleared: hold SEND frames back (reading stops
        at the next one) or let them through."""
        self.blocked = blocked

    def tell_blocked(self) -> None:
        """STOMP has no way to tell a client it is blocked."""

    def resume(self, now: float) -> None:
        """The alarm cleared: handle the held SEND and the frames after it."""
        pending = self.pending
        if pending is None or self.blocked:
            return
        self.pending = None
        frame, rest = pending
        self._resume_pass(itertools.chain((frame,), rest))

    # --- ending the connection ----------------------------------------------------------

    def internal_error(self) -> None:
        log.exception("%s: internal error, closing the STOMP connection", self.peer)
        self._error("internal_error", "INTERNAL_ERROR - internal error")

    def shutdown_on_error(self, reason: str) -> None:
        self._error("internal_error", "INTERNAL_ERROR - " + reason)

    def shutdown(self, reason: str, code: int = errors.CONNECTION_FORCED) -> None:
        self._broker_error(errors.AMQPConnectionError(code, reason))


_FRAMES: dict[str, Callable[[StompClient, Frame], None]] = {
    "SEND": StompClient._send,
    "SUBSCRIBE": StompClient._subscribe,
    "UNSUBSCRIBE": StompClient._unsubscribe,
    "ACK": StompClient._ack,
    "NACK": StompClient._nack,
    "BEGIN": StompClient._begin,
    "COMMIT": StompClient._commit,
    "ABORT": StompClient._abort,
    "DISCONNECT": StompClient._disconnect,
}
