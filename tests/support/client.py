"""A raw blocking AMQP 0-9-1 peer on a plain socket, for every suite: it sends whatever it
is told to (bytes or pamqp frames) and reads frames back one by one, raw or decoded, down
to the moment the server closes the socket."""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import time
from dataclasses import dataclass
from typing import Any

from pamqp import commands
from pamqp import frame as pframe
from pamqp.heartbeat import Heartbeat

from support.wire import (
    FRAME_END,
    FRAME_HEARTBEAT,
    PROTOCOL_HEADER,
    heartbeat_frame,
    method_frame,
    raw_frame,
    shortstr,
)

TIMEOUT = 5.0


def start_ok_bytes() -> bytes:
    return pframe.marshal(commands.Connection.StartOk(
        client_properties={"product": "raw-test-client"}, mechanism="PLAIN",
        response="\x00guest\x00guest", locale="en_US"), 0)


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

    def send_heartbeat(self) -> None:
        self.sock.sendall(heartbeat_frame())

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

    def read_bytes(self, n: int, timeout: float = TIMEOUT) -> bytes:
        """Exactly `n` raw bytes, or fewer if the socket closes or the time runs out."""
        deadline = time.monotonic() + timeout
        try:
            while len(self.buffer) < n and not self.eof and self._fill(deadline):
                pass
        except TimeoutError:
            pass
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

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

    def receive(self, timeout: float = TIMEOUT) -> tuple[int, Any, int] | None:
        """The next frame, heartbeats included, as (channel, pamqp object, payload size);
        None when the socket closed. Raises TimeoutError when nothing arrives in time."""
        received = self.read_frame(timeout)
        if received is None:
            return None
        frame_type, channel, payload = received
        _, channel, value = pframe.unmarshal(raw_frame(frame_type, channel, payload))
        return channel, value, len(payload)

    def expect(self, kind: type, timeout: float = TIMEOUT) -> Any:
        """The next frame (heartbeats skipped unless `kind` is Heartbeat); it must be a
        `kind`."""
        if kind is Heartbeat:
            received = self.receive(timeout)
            value = None if received is None else received[1]
        else:
            method = self.read_method(timeout)
            value = None if method is None else method[1]
        assert value is not None, f"connection closed while waiting for {kind.__name__}"
        assert isinstance(value, kind), f"expected {kind.__name__}, got {value!r}"
        return value

    def handshake(self, channel_max: int = 2047, frame_max: int = 131072,
                  heartbeat: int = 0, vhost: str = "/") -> commands.Connection.Tune:
        self.send(PROTOCOL_HEADER)
        self.expect(commands.Connection.Start)
        self.send(start_ok_bytes())
        tune = self.expect(commands.Connection.Tune)
        self.send_method(commands.Connection.TuneOk(
            channel_max=channel_max, frame_max=frame_max, heartbeat=heartbeat))
        self.send_method(commands.Connection.Open(virtual_host=vhost))
        self.expect(commands.Connection.OpenOk)
        return tune

    def open_channel(self, channel: int = 1) -> None:
        self.send(method_frame(channel, 20, 10, shortstr(b"")))
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
