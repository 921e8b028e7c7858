"""The management API under test: an embedded broker in the test's event loop with an httpx
client of its API (`management`, or `sampled_management` with the statistics it reads),
and polling on that loop until a condition holds
(`until`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx

from amqpbroker.management.api import create_app
from amqpbroker.management.statistics import Statistics
from amqpbroker.testing import EmbeddedBroker, running_broker

GUEST = ("guest", "guest")


async def until(predicate: Any, what: str, timeout: float = 5.0) -> None:
    """Poll on the event loop (the broker runs in it) until `predicate()` holds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, f"timed out: {what}"
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def sampled_management(**overrides: Any) -> AsyncIterator[
        tuple[EmbeddedBroker, Statistics, httpx.AsyncClient]]:
    """A broker in this test's event loop, the statistics its API reads (sampled only when
    the test calls `sample()`), and an httpx client of that API (one task: the broker's
    task group must be entered and left by the same task)."""
    async with running_broker(**overrides) as broker:
        statistics = Statistics(broker.server, 5.0)
        transport = httpx.ASGITransport(app=create_app(broker.server, statistics),
                                        client=("127.0.0.1", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:15672",
                                     auth=GUEST) as client:
            yield broker, statistics, client


@contextlib.asynccontextmanager
async def management(**overrides: Any
                     ) -> AsyncIterator[tuple[EmbeddedBroker, httpx.AsyncClient]]:
    """`sampled_management` without the statistics."""
    async with sampled_management(**overrides) as (broker, _, client):
        yield broker, client
