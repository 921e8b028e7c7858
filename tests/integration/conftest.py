"""Fixtures for the integration tests: aio-pika connectors to a fresh broker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import pytest
from integration_support import DEFAULT_TIMEOUT, Connector

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
