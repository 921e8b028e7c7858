"""An embedded broker for test suites: in the current event loop, or in a thread.

    async with running_broker() as broker:       # inside async code: broker.url
        ...
    with broker_in_thread() as broker:           # from synchronous code
        ...

`broker_in_thread` runs the broker on its own event loop in a background thread, so
blocking clients (pika, kombu) and async ones (aio-pika) can use it alike; the pytest
fixtures in `amqpbroker.pytest_plugin` are built on it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from anyio.from_thread import start_blocking_portal

from amqpbroker.app import running
from amqpbroker.config import Settings
from amqpbroker.transport.server import Server

T = TypeVar("T")


def _direct(fn: Callable[..., T], *args: Any) -> T:
    return fn(*args)


@dataclass(kw_only=True)
class EmbeddedBroker:
    """A running broker: where to reach it, and the server for inspection.

    `call(fn, *args)` runs `fn` on the broker's event loop (the broker is not
    thread-safe), e.g. `broker.call(broker.server.broker.set_alarm, "memory", True)`.
    """

    url: str
    host: str
    port: int
    server: Server
    call: Callable[..., Any] = _direct


def _settings(overrides: dict[str, Any]) -> Settings:
    return replace(Settings(host="127.0.0.1", port=0, management_port=0, prometheus_port=0),
                   **overrides)


@asynccontextmanager
async def running_broker(**overrides: Any) -> AsyncIterator[EmbeddedBroker]:
    """Run a broker in the current event loop on an ephemeral loopback port."""
    settings = _settings(overrides)
    async with running(settings) as server:
        yield EmbeddedBroker(
            url=f"amqp://{settings.default_user}:{settings.default_pass}@{settings.host}:"
                f"{server.port}/",
            host=settings.host, port=server.port, server=server)


@contextmanager
def broker_in_thread(**overrides: Any) -> Iterator[EmbeddedBroker]:
    """Run a broker on its own event loop in a background thread."""
    with start_blocking_portal() as portal, portal.wrap_async_context_manager(
            running_broker(**overrides)) as broker:
        yield replace(broker, call=portal.call)


def wait_for(predicate: Callable[[], Any], timeout: float = 5.0, what: str = "condition",
             interval: float = 0.005) -> Any:
    """Poll `predicate` until it returns something truthy and return that; raise
    AssertionError after `timeout` seconds. For tests: wait on a condition, not a sleep."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
