"""Shared test doubles and frame builders for the sans-IO unit tests."""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Iterator
from typing import Any

from pamqp import commands, header
from support.wire import content_frames, methods, pamqp_frame, raw_frame, read_frames

from amqpbroker import errors
from amqpbroker.app import connection_limits
from amqpbroker.broker.message import Message
from amqpbroker.config import Settings
from amqpbroker.protocol.amqp import commands as cmd
from amqpbroker.protocol.amqp import fastcodec
from amqpbroker.protocol.amqp.connection import Connection, Limits
from amqpbroker.protocol.amqp.spec import (
    CLASS_BASIC,
    HEARTBEAT_FRAME,
    METHOD_BASIC_PUBLISH,
    PROTOCOL_HEADER,
    split_index,
)

CLIENT_PROPERTIES = {
    "product": "unit-test",
    "capabilities": {
        "authentication_failure_close": True,
        "consumer_cancel_notify": True,
        "publisher_confirms": True,
    },
}
CAPABILITIES = {"publisher_confirms": True, "authentication_failure_close": True}


# --- frames ----------------------------------------------------------------------------


def publish_frames(channel: int, data: bytes, exchange: str = "", routing_key: str = "q",
                   frame_max: int = 131072,
                   properties: commands.Basic.Properties | None = None) -> bytes:
    return pamqp_frame(channel, commands.Basic.Publish(
        exchange=exchange, routing_key=routing_key)) + content_frames(
            channel, data, frame_max, properties)


def header_payload(body_size: int, properties: commands.Basic.Properties | None = None,
                   class_id: int = 60) -> bytes:
    payload = header.ContentHeader(0, body_size, properties).marshal()
    return struct.pack(">H", class_id) + payload[2:]


# The wire encodings the test modules import from here.
__all__ = ["content_frames", "methods", "pamqp_frame", "raw_frame", "read_frames"]


# --- driving the protocol -------------------------------------------------------------------


def limits(**overrides: Any) -> Limits:
    """The default connection limits (those of the default settings), some replaced."""
    return dataclasses.replace(connection_limits(Settings()), **overrides)


class RecordingHandler:
    """A test double for the broker side of the protocol state machine: `Driven` hands it
    each command as a call, which it records; `raise_on` makes a method fail."""

    def __init__(self, users: dict[str, str] | None = None,
                 vhosts: tuple[str, ...] = ("/",)) -> None:
        self.users = {"guest": "guest"} if users is None else users
        self.vhosts = vhosts
        self.calls: list[tuple[Any, ...]] = []
        self.raise_on: dict[int, errors.AMQPError] = {}

    def authenticate(self, mechanism: str, username: str, password: str) -> bool:
        self.calls.append(("authenticate", mechanism, username, password))
        return self.users.get(username) == password

    def update_secret(self, username: str, secret: bytes, reason: str) -> None:
        self.calls.append(("update_secret", username, secret, reason))
        error = self.raise_on.get(commands.Connection.UpdateSecret.index)
        if error is not None:
            raise error

    def open_vhost(self, vhost: str) -> None:
        self.calls.append(("open_vhost", vhost))
        if vhost not in self.vhosts:
            raise errors.vhost_not_found(vhost)

    def on_channel_open(self, channel: int) -> None:
        self.calls.append(("channel_open", channel))

    def on_channel_closed(self, channel: int) -> None:
        self.calls.append(("channel_closed", channel))

    def on_method(self, channel: int, index: int, args: Any) -> None:
        self.calls.append(("method", channel, index, args))
        error = self.raise_on.get(index)
        if error is not None:
            raise error

    def on_publish(self, channel: int, args: tuple[str, str, bool, bool], head: bytes,
                   info: fastcodec.HeaderInfo, data: bytes) -> None:
        self.calls.append(("publish", channel, args, head, info, data))

    def on_closed(self) -> None:
        self.calls.append(("closed",))

    def named(self, name: str) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] == name]


def plain_start_ok(user: str = "guest", password: str = "guest") -> commands.Connection.StartOk:
    return commands.Connection.StartOk(
        client_properties=CLIENT_PROPERTIES, mechanism="PLAIN",
        response=f"\0{user}\0{password}", locale="en_US")


class Driven:
    """A sans-IO `Connection` whose commands are answered by a `RecordingHandler` the way
    the transport's owner answers them, with the output kept here (`data_to_send`)."""

    def __init__(self, handler: RecordingHandler, capabilities: dict[str, bool] | None = None,
                 conn_limits: Limits | None = None, now: float = 0.0) -> None:
        self.handler = handler
        self.protocol = Connection(
            capabilities=CAPABILITIES if capabilities is None else capabilities,
            limits=conn_limits or limits(), now=now)
        self.out: list[bytes] = []
        self.released = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.protocol, name)

    def receive_data(self, data: bytes, now: float) -> None:
        self._run(self.protocol.receive_data(data, now))

    def resume(self, now: float) -> None:
        self._run(self.protocol.resume(now))

    def data_to_send(self, now: float) -> bytes:
        data, self.out = b"".join(self.out), []
        if data:
            self.protocol.data_sent(now)
        return data

    def tick(self, now: float) -> bool:
        command = self.protocol.tick(now)
        if isinstance(command, cmd.HeartbeatDue):
            if not self.out:
                self.out.append(HEARTBEAT_FRAME)
        elif isinstance(command, cmd.ConnectionClosed):
            self._release()
            return False
        return True

    def close(self, error: errors.AMQPError) -> None:
        self.out.append(self.protocol.close(error))
        self._release()

    def close_channel(self, channel: int, error: errors.AMQPError) -> None:
        data = self.protocol.close_channel(channel, error)
        if data:
            self.out.append(data)
            self.handler.on_channel_closed(channel)

    def connection_lost(self, reason: str) -> None:
        self.protocol.connection_lost(reason)
        self._release()

    def _release(self) -> None:
        if not self.released:
            self.released = True
            self.handler.on_closed()

    def _run(self, commands_in: Iterator[cmd.Command]) -> None:
        proto, handler = self.protocol, self.handler
        for command in commands_in:
            if isinstance(command, cmd.Send):
                self.out.append(command.data)
            elif isinstance(command, cmd.LoginRequested):
                ok = handler.authenticate(command.mechanism, command.username,
                                          command.password)  # type: ignore[arg-type]
                self.out.append(proto.accept_login() if ok else proto.refuse_login())
                if not ok:
                    self._release()
            elif isinstance(command, cmd.OpenRequested):
                try:
                    handler.open_vhost(command.vhost)
                except errors.AMQPConnectionError as exc:
                    self.out.append(proto.refuse_open(exc))
                    self._release()
                else:
                    self.out.append(proto.accept_open(command.vhost))
            elif isinstance(command, cmd.SecretUpdated):
                try:
                    handler.update_secret(command.username, command.secret, command.reason)
                except errors.AMQPConnectionError as exc:
                    self.close(exc)
                else:
                    self.out.append(proto.accept_secret())
            elif isinstance(command, cmd.ChannelOpened):
                self.out.append(command.reply)
                handler.on_channel_open(command.channel)
            elif isinstance(command, cmd.ChannelClosed):
                self.out.append(command.reply)
                handler.on_channel_closed(command.channel)
            elif isinstance(command, cmd.ConnectionClosed):
                self._release()
            elif isinstance(command, cmd.Publish):
                self._call(command.channel, (CLASS_BASIC, METHOD_BASIC_PUBLISH),
                           handler.on_publish, command.channel, command.args, command.header,
                           command.info, command.body)
            else:
                self._call(command.channel, split_index(command.method_index), handler.on_method,
                           *command)

    def _call(self, channel: int, ids: tuple[int, int], method: Any, *args: Any) -> None:
        try:
            method(*args)
        except errors.ChannelError as exc:
            self.close_channel(channel, exc.at(*ids))
        except errors.AMQPConnectionError as exc:
            self.close(exc.at(*ids))


def open_connection(handler: Any = None, conn_limits: Limits | None = None,
                    tune: tuple[int, int, int] = (2047, 131072, 60), vhost: str = "/",
                    now: float = 0.0) -> tuple[Driven, Any]:
    """A connection driven through the whole handshake; its output is drained."""
    handler = RecordingHandler() if handler is None else handler
    conn = Driven(handler, CAPABILITIES, conn_limits, now)
    conn.receive_data(PROTOCOL_HEADER, now)
    conn.receive_data(pamqp_frame(0, plain_start_ok()), now)
    conn.receive_data(pamqp_frame(0, commands.Connection.TuneOk(*tune)), now)
    conn.receive_data(pamqp_frame(0, commands.Connection.Open(virtual_host=vhost)), now)
    out = methods(conn.data_to_send(now))
    assert isinstance(out[-1][1], commands.Connection.OpenOk), out
    return conn, handler


def open_channel(conn: Driven, channel: int, now: float = 0.0) -> None:
    conn.receive_data(pamqp_frame(channel, commands.Channel.Open()), now)
    out = methods(conn.data_to_send(now))
    assert out and isinstance(out[-1][1], commands.Channel.OpenOk), out


# --- the broker's Sink -------------------------------------------------------------------


class RecordingSink:
    """A test double for the connection side of the broker: records what it is asked to
    send; `writable` is a switch."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.is_writable = True

    def send_method(self, channel_id: int, method: Any) -> None:
        self.calls.append(("method", channel_id, method))

    def notify(self, channel_id: int, method: Any) -> None:
        self.calls.append(("method", channel_id, method))

    def send_content(self, channel_id: int, method: Any, message: Message) -> None:
        self.calls.append(("content", channel_id, method, message))

    def send_deliver(self, channel_id: int, consumer: Any, delivery_tag: int,
                     redelivered: bool, message: Message) -> None:
        self.calls.append(("deliver", channel_id, consumer.tag, delivery_tag, redelivered,
                           message))

    def send_confirm(self, channel_id: int, delivery_tag: int, multiple: bool,
                     ack: bool) -> None:
        self.calls.append(("confirm", channel_id, delivery_tag, multiple, ack))

    def close_channel(self, channel_id: int, error: errors.AMQPError) -> None:
        self.calls.append(("close_channel", channel_id, error))

    def writable(self) -> bool:
        return self.is_writable

    def internal_error(self) -> None:
        self.calls.append(("internal_error",))

    def take(self, kind: str | None = None) -> list[tuple[Any, ...]]:
        """The recorded calls (of one kind), cleared."""
        taken = [c for c in self.calls if kind is None or c[0] == kind]
        self.calls = [c for c in self.calls if kind is not None and c[0] != kind]
        return taken


def make_message(exchange: str = "", routing_key: str = "", data: bytes = b"",
                 properties: commands.Basic.Properties | None = None) -> Message:
    """A message as the bridge builds it from a publish."""
    head = header.ContentHeader(0, len(data), properties).marshal()
    info = fastcodec.scan_header(head)
    return Message(exchange, routing_key, head, data, info.delivery_mode, info.priority,
                   info.expiration, info.headers_span, info.user_id, fastcodec.decode_headers)


# --- time --------------------------------------------------------------------------------


class FakeClock:
    """A clock that stands still until a test moves it: pass it as `Timers(clock=...)`."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


# --- the transport's owner of a connection, without sockets ------------------------------


def _nothing() -> None:
    return None


def owned_connection(broker: Any, frame_max: int = 131072,
                     channels: tuple[int, ...] = (1,)) -> Any:
    """A `ClientConnection` on `broker`, through the handshake as guest on '/', with
    `channels` open and its output drained."""
    from amqpbroker.transport.bridge import ClientConnection

    client = ClientConnection(broker, limits(), peer="test", now=0.0, wake=_nothing,
                              rearm=_nothing)
    client.receive(PROTOCOL_HEADER, 0.0)
    client.receive(pamqp_frame(0, commands.Connection.StartOk(
        client_properties={"capabilities": {"consumer_cancel_notify": True}},
        mechanism="PLAIN", response="\0guest\0guest", locale="en_US")), 0.0)
    client.receive(pamqp_frame(0, commands.Connection.TuneOk(16, frame_max, 0)), 0.0)
    client.receive(pamqp_frame(0, commands.Connection.Open(virtual_host="/")), 0.0)
    for channel in channels:
        client.receive(pamqp_frame(channel, commands.Channel.Open()), 0.0)
    client.take_output(0.0)
    assert client.session is not None
    return client
