"""A raw synchronous AMQP 0-9-1 client (socket + pamqp) and fixtures for the conformance suite."""

from __future__ import annotations

import contextlib
import itertools
import re
import struct
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pamqp import commands
from pamqp import frame as pframe
from pamqp import header as pheader
from pamqp.body import ContentBody
from pamqp.heartbeat import Heartbeat
from support.client import RawConnection
from support.wire import (
    FRAME_HEARTBEAT,
    PROTOCOL_HEADER,
    VOID,
    Typed,
    bits,
    body_frame,
    byte,
    double,
    field_table,
    field_value,
    header_frame,
    long,
    longstr,
    method_frame,
    raw_frame,
    short,
    shortstr,
    signedint,
)

from amqpbroker.testing import EmbeddedBroker, broker_in_thread

# The wire encodings the test modules import from here.
__all__ = [
    "VOID", "Typed", "bits", "body_frame", "byte", "double", "field_table", "field_value",
    "header_frame", "long", "longstr", "method_frame", "raw_frame", "short", "shortstr",
    "signedint",
]

TIMEOUT = 5.0
VHOST = "/"
CLIENT_CAPABILITIES = {
    "authentication_failure_close": True,
    "consumer_cancel_notify": True,
    "publisher_confirms": True,
    "basic.nack": True,
    "exchange_exchange_bindings": True,
    "connection.blocked": True,
    "per_consumer_qos": True,
}

Basic, Channel, Confirm, Connection = (
    commands.Basic, commands.Channel, commands.Confirm, commands.Connection)
Exchange, Queue, Tx = commands.Exchange, commands.Queue, commands.Tx

_counter = itertools.count(1)


def uniq(prefix: str = "t") -> str:
    """A fresh ascii name for a queue or exchange."""
    return f"{prefix}-{next(_counter)}-{uuid.uuid4().hex[:8]}"


class ConnectionClosed(Exception):
    """The server closed the socket (EOF or RST)."""


# --- hand-built wire encoding (typed field tables, raw frames) -------------------------------


def queue_declare_frame(channel: int, queue: str, passive: bool = False, durable: bool = False,
                        exclusive: bool = False, auto_delete: bool = False, nowait: bool = False,
                        arguments: dict[str, Any] | None = None) -> bytes:
    return method_frame(channel, 50, 10, struct.pack(">H", 0) + shortstr(queue)
                        + bits(passive, durable, exclusive, auto_delete, nowait)
                        + field_table(arguments))


def exchange_declare_frame(channel: int, exchange: str, type_: str = "direct",
                           passive: bool = False, durable: bool = False,
                           auto_delete: bool = False, internal: bool = False,
                           nowait: bool = False,
                           arguments: dict[str, Any] | None = None) -> bytes:
    return method_frame(channel, 40, 10, struct.pack(">H", 0) + shortstr(exchange)
                        + shortstr(type_) + bits(passive, durable, auto_delete, internal, nowait)
                        + field_table(arguments))


def queue_bind_frame(channel: int, queue: str, exchange: str, routing_key: str = "",
                     arguments: dict[str, Any] | None = None) -> bytes:
    return method_frame(channel, 50, 20, struct.pack(">H", 0) + shortstr(queue)
                        + shortstr(exchange) + shortstr(routing_key) + bits(False)
                        + field_table(arguments))


def publish_frame(channel: int, exchange: str, routing_key: str, mandatory: bool = False,
                  immediate: bool = False) -> bytes:
    return method_frame(channel, 60, 40, struct.pack(">H", 0) + shortstr(exchange)
                        + shortstr(routing_key) + bits(mandatory, immediate))


# --- received content ------------------------------------------------------------------------


@dataclass
class Delivery:
    """A Deliver / Get-Ok / Return with its content."""

    method: Any
    properties: commands.Basic.Properties
    body: bytes

    def __getattr__(self, name: str) -> Any:
        return getattr(self.method, name)


def _unwrap(frame: Any) -> Any:
    return frame.method if isinstance(frame, Delivery) else frame


def _name(types: tuple[type, ...]) -> str:
    return " or ".join(getattr(t, "name", t.__name__) for t in types)


def close_tuple(frame: Any) -> tuple[int, str, int, int]:
    return frame.reply_code, frame.reply_text, frame.class_id, frame.method_id


def assert_close(frame: Any, code: int, text: str | re.Pattern[str] | None,
                 class_id: int | None, method_id: int | None) -> None:
    """Compare a Close frame with the expectation; None fields are not checked."""
    got = close_tuple(frame)
    expected_text: Any = text
    if isinstance(text, re.Pattern):
        expected_text = got[1] if text.fullmatch(got[1]) else f"<matching {text.pattern!r}>"
    elif text is None:
        expected_text = got[1]
    expected = (code, expected_text, got[2] if class_id is None else class_id,
                got[3] if method_id is None else method_id)
    assert got == expected


# --- the client ----------------------------------------------------------------------------


class Client:
    """One AMQP connection, driven synchronously over a blocking socket."""

    def __init__(self, host: str, port: int, timeout: float = TIMEOUT) -> None:
        self.wire = RawConnection(host, port, timeout)
        self.timeout = timeout
        self.pending: list[tuple[int, Any]] = []
        self.next_channel = 1
        self.start: Any = None
        self.tune: Any = None
        self.frame_max = 131072

    # raw IO

    def send(self, data: bytes) -> None:
        self.wire.send(data)

    def send_method(self, channel: int, method: Any) -> None:
        self.wire.send_method(method, channel)

    def read_bytes(self, n: int, timeout: float | None = None) -> bytes:
        """Exactly n raw bytes (or fewer if the socket closes first)."""
        return self.wire.read_bytes(n, timeout or self.timeout)

    def _read_frame(self, deadline: float) -> tuple[int, Any]:
        if self.wire.buffer[:4] == b"AMQP":
            raise AssertionError(
                f"unexpected protocol header from server: {self.wire.buffer[:8]!r}")
        received = self.wire.read_frame(deadline - time.monotonic())
        if received is None:
            raise ConnectionClosed("EOF")
        frame_type, channel, payload = received
        if frame_type == FRAME_HEARTBEAT:
            return channel, Heartbeat()
        _, channel, value = pframe.unmarshal(raw_frame(frame_type, channel, payload))
        return channel, value

    def _next(self, deadline: float) -> tuple[int, Any]:
        """The next frame; content-bearing methods come back with their content."""
        channel, frame = self._read_frame(deadline)
        if isinstance(frame, Basic.Deliver | Basic.GetOk | Basic.Return):
            header = self._content_frame(channel, deadline)
            assert isinstance(header, pheader.ContentHeader), header
            parts: list[bytes] = []
            size = 0
            while size < header.body_size:
                body = self._content_frame(channel, deadline)
                assert isinstance(body, ContentBody), body
                parts.append(body.value)
                size += len(body.value)
            return channel, Delivery(frame, header.properties, b"".join(parts))
        return channel, frame

    def _content_frame(self, channel: int, deadline: float) -> Any:
        while True:
            ch, frame = self._read_frame(deadline)
            if ch == channel:
                return frame
            self.pending.append((ch, frame))

    @staticmethod
    def _abort(channel: int, frame: Any, want: tuple[type, ...], ch: int) -> None:
        inner = _unwrap(frame)
        if isinstance(inner, want):
            return
        if isinstance(inner, Connection.Close) or (
                ch == channel and isinstance(inner, Channel.Close)):
            raise AssertionError(
                f"{type(inner).__name__} on channel {ch} {close_tuple(inner)} "
                f"while waiting for {_name(want)} on channel {channel}")

    def wait(self, channel: int, *types: type, timeout: float | None = None,
             stop: Callable[[int, Any], bool] | None = None) -> Any:
        """The next frame of one of `types` on `channel`; other frames are kept pending.

        A Channel.Close on that channel, a Connection.Close, or a frame for which `stop`
        returns true fails the wait at once.
        """
        for i, (ch, frame) in enumerate(self.pending):
            self._abort(channel, frame, types, ch)
            self._stop(stop, ch, frame, types, channel)
            if ch == channel and isinstance(_unwrap(frame), types):
                del self.pending[i]
                return frame
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            try:
                ch, frame = self._next(deadline)
            except TimeoutError:
                raise AssertionError(
                    f"timed out waiting for {_name(types)} on channel {channel}; "
                    f"pending: {self.pending!r}") from None
            except ConnectionClosed:
                raise AssertionError(
                    f"connection closed while waiting for {_name(types)} on channel "
                    f"{channel}") from None
            if ch == channel and isinstance(_unwrap(frame), types):
                return frame
            self._abort(channel, frame, types, ch)
            self._stop(stop, ch, frame, types, channel)
            self.pending.append((ch, frame))

    @staticmethod
    def _stop(stop: Callable[[int, Any], bool] | None, ch: int, frame: Any,
              types: tuple[type, ...], channel: int) -> None:
        if stop is not None and stop(ch, _unwrap(frame)):
            raise AssertionError(
                f"got {type(_unwrap(frame)).__name__} on channel {ch} while waiting for "
                f"{_name(types)} on channel {channel}: the server accepted the command")

    def take(self, channel: int, *types: type) -> list[Any]:
        """Remove and return the pending frames of `types` on `channel`."""
        taken = [f for ch, f in self.pending if ch == channel and isinstance(_unwrap(f), types)]
        self.pending = [(ch, f) for ch, f in self.pending
                        if not (ch == channel and isinstance(_unwrap(f), types))]
        return taken

    # handshake

    def send_header(self, header: bytes = PROTOCOL_HEADER) -> Any:
        self.send(header)
        self.start = self.wait(0, Connection.Start)
        return self.start

    def start_ok(self, user: str = "guest", password: str = "guest", mechanism: str = "PLAIN",
                 response: bytes | None = None,
                 capabilities: dict[str, Any] | None = None) -> None:
        if response is None:
            if mechanism == "AMQPLAIN":
                response = field_table({"LOGIN": user, "PASSWORD": password})[4:]
            else:
                response = f"\0{user}\0{password}".encode()
        props = {"product": "amqpbroker-conformance", "version": "1",
                 "capabilities": CLIENT_CAPABILITIES if capabilities is None else capabilities}
        self.send(method_frame(0, 10, 11, field_table(props) + shortstr(mechanism)
                               + longstr(response) + shortstr("en_US")))

    def tune_ok(self, channel_max: int | None = None, frame_max: int | None = None,
                heartbeat: int = 0) -> None:
        self.tune = self.wait(0, Connection.Tune)
        self.frame_max = self.tune.frame_max if frame_max is None else frame_max
        self.send_method(0, Connection.TuneOk(
            self.tune.channel_max if channel_max is None else channel_max,
            self.frame_max, heartbeat))

    def open(self, vhost: str = VHOST) -> None:
        self.send_method(0, Connection.Open(vhost))

    def handshake(self, vhost: str = VHOST, channel_max: int | None = None,
                  frame_max: int | None = None, **start_ok: Any) -> Client:
        self.send_header()
        self.start_ok(**start_ok)
        self.tune_ok(channel_max, frame_max)
        self.open(vhost)
        self.wait(0, Connection.OpenOk)
        return self

    # channels and closing

    def channel(self, number: int | None = None) -> Chan:
        if number is None:
            number = self.next_channel
            self.next_channel += 1
        self.send_method(number, Channel.Open())
        self.wait(number, Channel.OpenOk)
        return Chan(self, number)

    def expect_connection_close(self, code: int, text: str | re.Pattern[str] | None,
                                class_id: int | None = None,
                                method_id: int | None = None,
                                stop: Callable[[int, Any], bool] | None = None) -> Any:
        """Wait for Connection.Close, check it, answer Close-Ok, see the socket close."""
        close = self.wait(0, Connection.Close, stop=stop)
        assert_close(close, code, text, class_id, method_id)
        try:
            self.send_method(0, Connection.CloseOk())
        except OSError:
            return close
        try:
            self.expect_disconnect(allow_close=True, timeout=2.0)
        except AssertionError as exc:
            raise AssertionError(
                f"the Connection.Close {close_tuple(close)} was right, but after Close-Ok: "
                f"{exc}") from None
        return close

    def expect_disconnect(self, allow_close: bool = True, timeout: float | None = 4.0,
                          close_codes: tuple[int, ...] | None = None) -> list[Any]:
        """Read until the server drops the socket. A Connection.Close (with one of
        `close_codes`, if given) is tolerated when `allow_close`; any other frame is not."""
        deadline = time.monotonic() + (timeout or self.timeout)
        seen: list[Any] = []
        while True:
            try:
                ch, frame = self._next(deadline)
            except ConnectionClosed:
                return seen
            except TimeoutError:
                raise AssertionError(
                    f"server did not close the connection; frames seen: {seen!r}") from None
            if isinstance(frame, Heartbeat):
                continue
            if allow_close and isinstance(frame, Connection.Close):
                if close_codes is not None:
                    assert frame.reply_code in close_codes, close_tuple(frame)
                seen.append(frame)
                try:
                    self.send_method(0, Connection.CloseOk())
                except OSError:
                    return seen
                continue
            if isinstance(frame, Connection.CloseOk | Channel.CloseOk):
                continue
            raise AssertionError(f"expected the connection to close, got {frame!r} on {ch}")

    def assert_usable(self) -> None:
        """The connection still works: a new channel can declare a queue."""
        chan = self.channel()
        ok = chan.call(Queue.Declare(queue="", exclusive=True), Queue.DeclareOk)
        assert ok.queue.startswith("amq.gen-")

    def close(self) -> None:
        self.wire.close()


class Chan:
    """An open channel of a Client."""

    def __init__(self, client: Client, number: int) -> None:
        self.client = client
        self.number = number

    def send(self, method: Any) -> None:
        self.client.send_method(self.number, method)

    def send_raw(self, data: bytes) -> None:
        self.client.send(data)

    def wait(self, *types: type, timeout: float | None = None,
             stop: Callable[[int, Any], bool] | None = None) -> Any:
        return self.client.wait(self.number, *types, timeout=timeout, stop=stop)

    def call(self, method: Any, *reply: type) -> Any:
        self.send(method)
        return self.wait(*reply)

    def take(self, *types: type) -> list[Any]:
        return self.client.take(self.number, *types)

    def sync(self) -> None:
        """A round trip on this channel: everything the server sent before is pending now."""
        self.send_raw(exchange_declare_frame(self.number, "amq.fanout", "fanout", passive=True))
        self.wait(Exchange.DeclareOk)

    # queues and exchanges

    def queue_declare(self, queue: str = "", passive: bool = False, durable: bool = False,
                      exclusive: bool = False, auto_delete: bool = False,
                      arguments: dict[str, Any] | None = None, ok: bool = True) -> Any:
        self.send_raw(queue_declare_frame(self.number, queue, passive, durable, exclusive,
                                          auto_delete, False, arguments))
        return self.wait(Queue.DeclareOk) if ok else None

    def exchange_declare(self, exchange: str, type_: str = "direct", passive: bool = False,
                         durable: bool = False, auto_delete: bool = False,
                         internal: bool = False, arguments: dict[str, Any] | None = None,
                         ok: bool = True) -> Any:
        self.send_raw(exchange_declare_frame(self.number, exchange, type_, passive, durable,
                                             auto_delete, internal, False, arguments))
        return self.wait(Exchange.DeclareOk) if ok else None

    def queue_bind(self, queue: str, exchange: str, routing_key: str = "",
                   arguments: dict[str, Any] | None = None, ok: bool = True) -> Any:
        self.send_raw(queue_bind_frame(self.number, queue, exchange, routing_key, arguments))
        return self.wait(Queue.BindOk) if ok else None

    # basic

    def publish(self, exchange: str, routing_key: str, body: bytes = b"",
                properties: commands.Basic.Properties | None = None, mandatory: bool = False,
                immediate: bool = False) -> None:
        data = [publish_frame(self.number, exchange, routing_key, mandatory, immediate),
                pframe.marshal(pheader.ContentHeader(
                    0, len(body), properties or Basic.Properties()), self.number)]
        step = self.client.frame_max - 8
        data.extend(body_frame(self.number, body[i:i + step]) for i in range(0, len(body), step))
        self.send_raw(b"".join(data))

    def publish_with_headers(self, exchange: str, routing_key: str,
                             headers: dict[str, Any] | None, body: bytes = b"x") -> None:
        self.send_raw(publish_frame(self.number, exchange, routing_key)
                      + header_frame(self.number, len(body), headers)
                      + body_frame(self.number, body))

    def get(self, queue: str, no_ack: bool = False) -> Delivery | None:
        reply = self.call(Basic.Get(queue=queue, no_ack=no_ack), Basic.GetOk, Basic.GetEmpty)
        return reply if isinstance(reply, Delivery) else None

    def get_all(self, queue: str) -> list[bytes]:
        bodies = []
        while (message := self.get(queue, no_ack=True)) is not None:
            bodies.append(message.body)
        return bodies

    def consume(self, queue: str, tag: str = "", no_ack: bool = False,
                exclusive: bool = False) -> str:
        ok = self.call(Basic.Consume(queue=queue, consumer_tag=tag, no_ack=no_ack,
                                     exclusive=exclusive), Basic.ConsumeOk)
        return ok.consumer_tag

    def ack(self, tag: int, multiple: bool = False) -> None:
        self.send(Basic.Ack(delivery_tag=tag, multiple=multiple))

    def _probe(self) -> Callable[[int, Any], bool]:
        """Send a harmless synchronous method after the command under test: RabbitMQ drops
        it once the channel is closing, so its reply means no error is coming."""
        with contextlib.suppress(OSError):
            self.send_raw(exchange_declare_frame(self.number, "amq.fanout", "fanout",
                                                 passive=True))
        return lambda ch, frame: ch == self.number and isinstance(frame, Exchange.DeclareOk)

    def expect_channel_close(self, code: int, text: str | re.Pattern[str] | None,
                             class_id: int | None = None, method_id: int | None = None,
                             check_usable: bool = True, probe: bool = True) -> Any:
        """Wait for the server's Channel.Close, check it, answer Close-Ok; then check that
        the connection still works (a new channel can declare a queue)."""
        close = self.wait(Channel.Close, stop=self._probe() if probe else None)
        assert_close(close, code, text, class_id, method_id)
        self.send(Channel.CloseOk())
        if check_usable:
            self.client.assert_usable()
        return close

    def expect_connection_close(self, code: int, text: str | re.Pattern[str] | None,
                                class_id: int | None = None, method_id: int | None = None,
                                probe: bool = True) -> Any:
        return self.client.expect_connection_close(code, text, class_id, method_id,
                                                   stop=self._probe() if probe else None)

    def expect_error(self, conn: bool, code: int, text: str | re.Pattern[str] | None,
                     class_id: int | None = None, method_id: int | None = None) -> Any:
        """A channel error (conn=False) or a connection error (conn=True)."""
        if conn:
            return self.expect_connection_close(code, text, class_id, method_id)
        return self.expect_channel_close(code, text, class_id, method_id)


# --- fixtures --------------------------------------------------------------------------------


Connect = Callable[..., Client]


def make_connect(broker: EmbeddedBroker, clients: list[Client]) -> Connect:
    def connect(handshake: bool = True, **kwargs: Any) -> Client:
        client = Client(broker.host, broker.port)
        clients.append(client)
        return client.handshake(**kwargs) if handshake else client
    return connect


@pytest.fixture(scope="module")
def broker() -> Iterator[EmbeddedBroker]:
    """One broker per test module (tests use fresh names, so state does not leak)."""
    with broker_in_thread() as running:
        yield running


@pytest.fixture
def connect(broker: EmbeddedBroker) -> Iterator[Connect]:
    """Opens raw clients to the module's broker; closes them after the test."""
    clients: list[Client] = []
    yield make_connect(broker, clients)
    for client in clients:
        client.close()


@pytest.fixture
def conn(connect: Connect) -> Client:
    return connect()


@pytest.fixture
def ch(conn: Client) -> Chan:
    return conn.channel()


# Test modules import the helpers above as `amqp_conformance`: a plain `import conftest`
# could pick up another directory's conftest when several test trees run together.
sys.modules.setdefault("amqp_conformance", sys.modules[__name__])
