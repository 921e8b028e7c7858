"""Helpers shared by the integration tests: deadline polling and a raw AMQP client."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from pamqp import commands

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
