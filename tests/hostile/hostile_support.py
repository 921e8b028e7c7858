"""Raw-socket AMQP client, hand-built wire encodings and health checks for hostile tests."""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import struct
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pika
from pamqp import commands
from pamqp import frame as pframe
from support.wire import (
    EMPTY_TABLE,
    FRAME_BODY,
    FRAME_END,
    FRAME_HEADER,
    FRAME_HEARTBEAT,
    FRAME_METHOD,
    PROTOCOL_HEADER,
    body_frame,
    header_frame,
    heartbeat_frame,
    longstr,
    method_frame,
    method_payload,
    nested_table,
    raw_frame,
    shortstr,
    table,
)

from amqpbroker.testing import EmbeddedBroker, broker_in_thread, wait_for

# The wire encodings the test modules import from here.
__all__ = [
    "EMPTY_TABLE", "FRAME_BODY", "FRAME_END", "FRAME_HEADER", "FRAME_HEARTBEAT",
    "FRAME_METHOD", "PROTOCOL_HEADER", "body_frame", "header_frame", "heartbeat_frame",
    "longstr", "method_frame", "method_payload", "nested_table", "raw_frame", "shortstr",
    "table",
]

TIMEOUT = 5.0
# Every reply code a Connection.Close for a client's mistake may carry; 541 (internal
# error) is deliberately absent: it means the broker tripped over its own feet.
CLIENT_ERROR_CODES = {320, 402, 403, 404, 405, 406, 501, 502, 503, 504, 505, 506, 530, 540}


# --- waiting -------------------------------------------------------------------------------


def channel_open(channel: int) -> bytes:
    return method_frame(channel, 20, 10, shortstr(b""))


def queue_declare_args(name: bytes, arguments: bytes = EMPTY_TABLE, bits: int = 0) -> bytes:
    """Queue.Declare arguments: ticket, queue, the five bits, arguments."""
    return struct.pack(">H", 0) + shortstr(name) + bytes([bits]) + arguments


def queue_declare(channel: int, name: bytes, arguments: bytes = EMPTY_TABLE) -> bytes:
    return method_frame(channel, 50, 10, queue_declare_args(name, arguments))


def basic_publish(channel: int, exchange: bytes = b"", routing_key: bytes = b"q") -> bytes:
    return method_frame(channel, 60, 40, struct.pack(">H", 0) + shortstr(exchange)
                        + shortstr(routing_key) + b"\x00")


def start_ok_bytes() -> bytes:
    return pframe.marshal(commands.Connection.StartOk(
        client_properties={"product": "hostile-test"}, mechanism="PLAIN",
        response="\x00guest\x00guest", locale="en_US"), 0)


# --- the raw client ----------------------------------------------------------------------------


def describe(method: Any) -> str:
    """A pamqp method with its arguments, for assertion messages."""
    args = {name: getattr(method, name, None) for name in getattr(method, "__slots__", ())}
    return f"{getattr(method, 'name', type(method).__name__)}{args}"


@dataclass
class Closed:
    """How a connection ended: a Connection.Close (`code` set) or a bare socket close; or,
    when waiting strictly, the first other method the server answered with instead."""

    code: int | None = None
    text: str = ""
    class_id: int = 0
    method_id: int = 0
    unexpected: Any = None

    @property
    def bare(self) -> bool:
        return self.code is None and self.unexpected is None

    def __str__(self) -> str:
        if self.unexpected is not None:
            return f"the broker answered {describe(self.unexpected)}"
        if self.code is None:
            return "a bare socket close"
        return f"Connection.Close {self.code} {self.text!r} ({self.class_id}/{self.method_id})"


class RawConnection:
    """A blocking AMQP 0-9-1 peer on a plain socket that sends whatever it is told to."""

    def __init__(self, host: str, port: int, timeout: float = TIMEOUT) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        self.eof = False

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_method(self, method: Any, channel: int = 0) -> None:
        self.sock.sendall(pframe.marshal(method, channel))

    def _fill(self, deadline: float) -> bool:
        """Read more bytes; False on EOF or reset. Raises TimeoutError at the deadline."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("nothing arrived in time")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(262144)
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        except TimeoutError:
            raise TimeoutError("nothing arrived in time") from None
        if not chunk:
            self.eof = True
            return False
        self.buffer += chunk
        return True

    def read_frame(self, timeout: float = TIMEOUT) -> tuple[int, int, bytes] | None:
        """The next frame as (type, channel, payload); None when the socket closed."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buffer) >= 7:
                frame_type, channel, size = struct.unpack_from(">BHI", self.buffer)
                if len(self.buffer) >= size + 8:
                    assert self.buffer[size + 7] == FRAME_END, "server sent a bad frame end"
                    payload = self.buffer[7:size + 7]
                    self.buffer = self.buffer[size + 8:]
                    return frame_type, channel, payload
            if self.eof or not self._fill(deadline):
                return None

    def read_method(self, timeout: float = TIMEOUT) -> tuple[int, Any] | None:
        """The next method frame (skipping heartbeats) decoded with pamqp, with its channel."""
        while True:
            received = self.read_frame(timeout)
            if received is None:
                return None
            frame_type, channel, payload = received
            if frame_type == FRAME_HEARTBEAT:
                continue
            data = raw_frame(frame_type, channel, payload)
            _, channel, value = pframe.unmarshal(data)
            return channel, value

    def expect(self, kind: type, timeout: float = TIMEOUT) -> Any:
        received = self.read_method(timeout)
        assert received is not None, f"connection closed while waiting for {kind.__name__}"
        _, value = received
        assert isinstance(value, kind), f"expected {kind.__name__}, got {value!r}"
        return value

    def handshake(self, channel_max: int = 2047, frame_max: int = 131072,
                  heartbeat: int = 0) -> commands.Connection.Tune:
        self.send(PROTOCOL_HEADER)
        self.expect(commands.Connection.Start)
        self.send(start_ok_bytes())
        tune = self.expect(commands.Connection.Tune)
        self.send_method(commands.Connection.TuneOk(
            channel_max=channel_max, frame_max=frame_max, heartbeat=heartbeat))
        self.send_method(commands.Connection.Open(virtual_host="/"))
        self.expect(commands.Connection.OpenOk)
        return tune

    def open_channel(self, channel: int = 1) -> None:
        self.send(channel_open(channel))
        got_channel, _ = self.expect_on(commands.Channel.OpenOk)
        assert got_channel == channel

    def expect_on(self, kind: type, timeout: float = TIMEOUT) -> tuple[int, Any]:
        received = self.read_method(timeout)
        assert received is not None, f"connection closed while waiting for {kind.__name__}"
        assert isinstance(received[1], kind), f"expected {kind.__name__}, got {received[1]!r}"
        return received

    def wait_eof(self, timeout: float = TIMEOUT) -> bytes:
        """Read until the server closes the socket; returns all bytes that arrived first."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            self._fill(deadline)
        data, self.buffer = self.buffer, b""
        return data

    def wait_closed(self, timeout: float = TIMEOUT, strict: bool = False) -> Closed:
        """Read until the connection ends: a Connection.Close on channel 0 (answered with
        Close-Ok, after which the server must close the socket) or a bare socket close.
        Other methods that arrive first (replies, Channel.Close) are skipped, unless `strict`:
        then the first one is returned as `unexpected`."""
        deadline = time.monotonic() + timeout
        while True:
            received = self.read_method(max(deadline - time.monotonic(), 0.001))
            if received is None:
                return Closed()
            channel, value = received
            if strict and not isinstance(value, commands.Connection.Close):
                return Closed(unexpected=value)
            if channel == 0 and isinstance(value, commands.Connection.Close):
                with contextlib.suppress(OSError):
                    self.send_method(commands.Connection.CloseOk())
                self.wait_eof(max(deadline - time.monotonic(), 1.0))
                return Closed(value.reply_code, value.reply_text, value.class_id,
                              value.method_id)

    def readable(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.sock], [], [], timeout)
        return bool(ready)


@contextlib.contextmanager
def raw_connection(broker: EmbeddedBroker, timeout: float = TIMEOUT) -> Iterator[RawConnection]:
    conn = RawConnection(broker.host, broker.port, timeout)
    try:
        yield conn
    finally:
        conn.close()


def assert_connection_error(closed: Closed, *codes: int) -> None:
    assert closed.code in codes, f"expected a Connection.Close with {codes}, got {closed}"


# --- broker health -------------------------------------------------------------------------------


def assert_serves(broker: EmbeddedBroker) -> None:
    """A normal client (pika) can still declare, publish and get on this broker."""
    params = pika.URLParameters(broker.url)
    params.socket_timeout = TIMEOUT
    params.blocked_connection_timeout = TIMEOUT
    params.connection_attempts = 1
    params.heartbeat = 0
    connection = pika.BlockingConnection(params)
    try:
        channel = connection.channel()
        queue = channel.queue_declare("", exclusive=True).method.queue
        body = uuid.uuid4().bytes
        channel.basic_publish("", queue, body)
        method, _, got = channel.basic_get(queue, auto_ack=True)
        assert method is not None, "the message did not arrive"
        assert got == body
    finally:
        connection.close()


def client_count(broker: EmbeddedBroker) -> int:
    return broker.call(lambda: len(broker.server.clients))


def wait_no_clients(broker: EmbeddedBroker, timeout: float = TIMEOUT) -> None:
    wait_for(lambda: client_count(broker) == 0, timeout,
             "the broker to forget every connection")


class ErrorRecords(logging.Handler):
    """Collects ERROR (and worse) records: the broker logs its own failures that way."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def describe(self) -> str:
        return "; ".join(f"{r.name}: {r.getMessage()} {r.exc_info[1]!r}" if r.exc_info
                         else f"{r.name}: {r.getMessage()}" for r in self.records)


@contextlib.contextmanager
def module_broker(**overrides: Any) -> Iterator[EmbeddedBroker]:
    """A broker for one test module, on an ephemeral loopback port."""
    with broker_in_thread(**overrides) as broker:
        yield broker
