"""Helpers shared by the integration tests: deadline polling and a raw AMQP client."""

from __future__ import annotations

import asyncio
import inspect
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from pamqp import commands, frame
from pamqp.heartbeat import Heartbeat

DEFAULT_TIMEOUT = 5.0
POLL_INTERVAL = 0.005

Connector = Callable[..., Awaitable[aio_pika.abc.AbstractConnection]]


async def async_wait_for(predicate: Callable[[], Any], timeout: float = DEFAULT_TIMEOUT,
                         what: str = "condition") -> Any:
    """`wait_for` for coroutines: polls without blocking the event loop. The predicate may
    be a coroutine function."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(POLL_INTERVAL)


class Collector:
    """A consumer callback that keeps every delivery (and its arrival time), in order."""

    def __init__(self) -> None:
        self.messages: list[AbstractIncomingMessage] = []
        self.times: list[float] = []

    async def __call__(self, message: AbstractIncomingMessage) -> None:
        self.messages.append(message)
        self.times.append(time.monotonic())

    @property
    def bodies(self) -> list[bytes]:
        return [m.body for m in self.messages]

    async def wait(self, count: int) -> None:
        await async_wait_for(lambda: len(self.messages) >= count,
                             what=f"{count} deliveries (have {len(self.messages)})")


async def passive(channel: AbstractChannel, name: str) -> commands.Queue.DeclareOk:
    """Passive Queue.Declare on the underlying channel (no robust bookkeeping)."""
    underlay = await channel.get_underlay_channel()
    return await underlay.queue_declare(name, passive=True)

class RawClient:
    """A minimal blocking AMQP 0-9-1 client on a plain socket, framed with pamqp."""

    def __init__(self, host: str, port: int, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buffer = b""

    def close(self) -> None:
        self.sock.close()

    def send(self, value: Any, channel: int = 0) -> None:
        self.sock.sendall(frame.marshal(value, channel))

    def send_heartbeat(self) -> None:
        self.sock.sendall(Heartbeat.marshal())

    def receive(self, timeout: float = DEFAULT_TIMEOUT) -> tuple[int, Any, int] | None:
        """The next frame as (channel, frame object, payload size); None on EOF.
        Raises TimeoutError when nothing complete arrives in time."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buffer) >= 7:
                _, channel, size = struct.unpack(">BHI", self.buffer[:7])
                if len(self.buffer) >= size + 8:
                    data, self.buffer = self.buffer[:size + 8], self.buffer[size + 8:]
                    _, channel, value = frame.unmarshal(data)
                    return channel, value, size
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no complete frame in time")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                return None
            if not chunk:
                return None
            self.buffer += chunk

    def expect(self, kind: type, timeout: float = DEFAULT_TIMEOUT) -> Any:
        """Receive frames, skipping heartbeats, until one of `kind` arrives."""
        while True:
            received = self.receive(timeout)
            assert received is not None, f"connection closed while waiting for {kind}"
            _, value, _ = received
            if isinstance(value, Heartbeat) and kind is not Heartbeat:
                continue
            assert isinstance(value, kind), f"expected {kind.__name__}, got {value!r}"
            return value

    def handshake(self, heartbeat: int = 0, frame_max: int = 131072,
                  vhost: str = "/") -> commands.Connection.Tune:
        self.sock.sendall(b"AMQP\x00\x00\x09\x01")
        self.expect(commands.Connection.Start)
        self.send(commands.Connection.StartOk(
            client_properties={"product": "raw-test-client"}, mechanism="PLAIN",
            response="\x00guest\x00guest", locale="en_US"))
        tune = self.expect(commands.Connection.Tune)
        self.send(commands.Connection.TuneOk(
            channel_max=tune.channel_max, frame_max=frame_max, heartbeat=heartbeat))
        self.send(commands.Connection.Open(virtual_host=vhost))
        self.expect(commands.Connection.OpenOk)
        return tune
