"""Shared helpers for the integration tests: deadline polling and aio-pika connectors."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aio_pika
import pytest

DEFAULT_TIMEOUT = 5.0
POLL_INTERVAL = 0.005


def wait_for(predicate: Callable[[], Any], timeout: float = DEFAULT_TIMEOUT,
             what: str = "condition") -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(POLL_INTERVAL)


async def async_wait_for(predicate: Callable[[], Any], timeout: float = DEFAULT_TIMEOUT,
                         what: str = "condition") -> Any:
    """`wait_for` for coroutines: polls without blocking the event loop."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(POLL_INTERVAL)


Connector = Callable[..., Awaitable[aio_pika.abc.AbstractConnection]]

CONNECTORS = {"connect": aio_pika.connect, "connect_robust": aio_pika.connect_robust}


async def _connector(url: str, name: str) -> AsyncIterator[Connector]:
    factory = CONNECTORS[name]
    opened: list[aio_pika.abc.AbstractConnection] = []

    async def open_connection(**kwargs: Any) -> aio_pika.abc.AbstractConnection:
        connection = await factory(url, timeout=DEFAULT_TIMEOUT, **kwargs)
        opened.append(connection)
        return connection

    try:
        yield open_connection
    finally:
        for connection in reversed(opened):
            if not connection.is_closed:
                await asyncio.wait_for(connection.close(), DEFAULT_TIMEOUT)


@pytest.fixture(params=sorted(CONNECTORS))
async def connect(request: pytest.FixtureRequest, amqp_url: str) -> AsyncIterator[Connector]:
    """Opens aio-pika connections to a fresh broker, with `connect` and `connect_robust`;
    closes them before the broker stops."""
    async for open_connection in _connector(amqp_url, request.param):
        yield open_connection


@pytest.fixture
async def connect_plain(amqp_url: str) -> AsyncIterator[Connector]:
    """Like `connect`, with `aio_pika.connect` only (for tests where the robust client's
    reconnect logic would hide what the broker did)."""
    async for open_connection in _connector(amqp_url, "connect"):
        yield open_connection
