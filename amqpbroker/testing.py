"""An embedded broker for test suites: in the current event loop, or in a thread.

    async with running_broker() as broker:       # inside async code: broker.url
        ...
    with broker_in_thread() as broker:           # from synchronous code
        ...

`broker_in_thread` runs the broker on its own event loop in a background thread, so
blocking clients (pika, kombu) and async ones (aio-pika) can use it alike; the pytest
fixtures in `amqpbroker.pytest_plugin` are built on it.

A `BrokerView` is what a test sees of one vhost: typed snapshots of what the broker holds
(`queue`, `messages`, `consumers`, ...), waits with a deadline whose errors say what the
broker holds instead (`wait_for_queue_depth`, ...), and connection faults. Its `aio`
gives the waits as coroutines, for async tests whose clients share the test's loop. An
`EmbeddedBroker` is the view of the default vhost plus the broker-wide controls: the
virtual clock (`clock.advance`), blocking publishers, refusing connections, `restart`,
and fresh vhosts (`new_vhost()`). Shutdown sends every client its Close and does not wait.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import replace
from typing import Any, TypeVar

import anyio
import anyio.from_thread
import anyio.to_thread
from anyio.from_thread import start_blocking_portal

from amqpbroker.config import Settings
from amqpbroker.control import inspection
from amqpbroker.control.controller import Controller
from amqpbroker.control.inspection import (
    BindingInfo,
    ConnectionInfo,
    ConsumerInfo,
    ExchangeInfo,
    MessageInfo,
    QueueInfo,
    Wait,
)
from amqpbroker.transport.server import Server

__all__ = ["AsyncBrokerView", "BindingInfo", "BrokerView", "ConnectionInfo", "ConsumerInfo",
           "EmbeddedBroker", "ExchangeInfo", "MessageInfo", "QueueInfo", "broker_in_thread",
           "running_broker", "wait_for"]

T = TypeVar("T")
TIMEOUT = 5.0  # seconds a wait gives its condition
POLL = 0.005
Connection = str | ConnectionInfo  # a connection, by its name or as inspected


class _Loop:
    """Runs functions on the broker's event loop from any thread: through a blocking
    portal (a broker in its own thread), or directly (on the loop's own thread) and
    through anyio's worker-thread bridge (from a thread the loop started)."""

    def __init__(self, portal: anyio.from_thread.BlockingPortal | None = None) -> None:
        self.portal = portal
        self.thread = threading.get_ident()

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        if self.portal is not None:
            return self.portal.call(fn, *args)
        if threading.get_ident() == self.thread:
            return fn(*args)
        return anyio.from_thread.run_sync(fn, *args)

    def wait(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Await coroutine function `fn` on the loop, from another thread."""
        if self.portal is not None:
            return self.portal.call(fn, *args)
        return anyio.from_thread.run(fn, *args)


def _name(connection: Connection) -> str:
    return connection.name if isinstance(connection, ConnectionInfo) else connection


class BrokerView:
    """One vhost of an embedded broker, as a test inspects and disturbs it."""

    def __init__(self, controller: Controller, loop: _Loop, vhost: str) -> None:
        self._controller = controller
        self._loop = loop
        self.vhost = vhost

    @property
    def url(self) -> str:
        """The `amqp://` URL of this vhost, with the default user's credentials."""
        settings = self._controller.settings
        path = "" if self.vhost == "/" else urllib.parse.quote(self.vhost, safe="")
        return (f"amqp://{settings.default_user}:{settings.default_pass}@{settings.host}:"
                f"{settings.port}/{path}")

    @property
    def aio(self) -> AsyncBrokerView:
        """The waits of this view as coroutines (they poll in a worker thread)."""
        return AsyncBrokerView(self)

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` on the broker's event loop (the broker is not thread-safe)."""
        return self._loop.call(fn, *args)

    def _read(self, fn: Callable[..., T], *args: Any) -> T:
        return self.call(lambda: fn(self._controller.server, self.vhost, *args))

    # --- snapshots -----------------------------------------------------------------------

    def queues(self) -> list[QueueInfo]:
        return self._read(inspection.queues)

    def queue(self, name: str) -> QueueInfo:
        """The queue's counts and settings; AssertionError naming the queues there are."""
        return self._read(inspection.queue, name)

    def messages(self, queue: str) -> list[MessageInfo]:
        """The queue's ready messages in delivery order, left where they are."""
        return self._read(inspection.messages, queue)

    def unacked_messages(self, queue: str) -> list[MessageInfo]:
        """The queue's messages delivered and not yet acked."""
        return self._read(inspection.unacked_messages, queue)

    def consumers(self, queue: str | None = None) -> list[ConsumerInfo]:
        return self._read(inspection.consumers, queue)

    def exchanges(self) -> list[ExchangeInfo]:
        return self._read(inspection.exchanges)

    def bindings(self) -> list[BindingInfo]:
        return self._read(inspection.bindings)

    def connections(self) -> list[ConnectionInfo]:
        """Open connections on this vhost, with their client properties."""
        return self._read(inspection.connections)

    def confirms_outstanding(self) -> int:
        """Publishes on confirm-mode channels that have not been confirmed yet."""
        return self._read(inspection.confirms_outstanding)

    def dead_lettered(self, reason: str | None = None) -> list[MessageInfo]:
        """Messages in this vhost's queues that were dead-lettered (for `reason`: rejected,
        expired, maxlen or delivery_limit)."""
        return self._read(inspection.dead_lettered, reason)

    # --- waits ---------------------------------------------------------------------------

    def wait(self, condition: Wait, timeout: float = TIMEOUT) -> Any:
        """Poll `condition` until it holds and return its result; AssertionError saying
        what the broker holds after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.call(lambda: condition.check(self._controller.server))
            if result is not None:
                return result
            if time.monotonic() >= deadline:
                state = self.call(lambda: condition.explain(self._controller.server))
                raise AssertionError(f"timed out after {timeout}s waiting for "
                                     f"{condition.what}: {state}")
            time.sleep(POLL)

    def wait_for_queue_depth(self, queue: str, depth: int, timeout: float = TIMEOUT
                             ) -> QueueInfo:
        """Wait until the queue holds `depth` messages (ready plus unacked)."""
        return self.wait(inspection.queue_depth(self.vhost, queue, depth), timeout)

    def wait_for_message(self, queue: str, predicate: Callable[[MessageInfo], bool] | None
                         = None, timeout: float = TIMEOUT) -> MessageInfo:
        """Wait for a ready message of the queue that `predicate` accepts; it stays queued."""
        return self.wait(inspection.message_in(self.vhost, queue, predicate), timeout)

    def wait_until_acked(self, queue: str, timeout: float = TIMEOUT) -> QueueInfo:
        """Wait until the queue holds nothing: every message delivered and acked."""
        return self.wait(inspection.all_acked(self.vhost, queue), timeout)

    def wait_for_consumers(self, queue: str, count: int = 1, timeout: float = TIMEOUT
                           ) -> list[ConsumerInfo]:
        return self.wait(inspection.consumer_count(self.vhost, queue, count), timeout)

    def wait_for_connections(self, count: int = 1, timeout: float = TIMEOUT
                             ) -> list[ConnectionInfo]:
        """Wait until `count` connections are open on this vhost (0: all gone)."""
        return self.wait(inspection.connection_count(self.vhost, count), timeout)

    # --- connection faults ---------------------------------------------------------------

    def close_connection(self, connection: Connection, code: int = 320,
                         text: str = "closed by the test") -> None:
        """Close a connection from the broker with `code` and `text`."""
        self.call(self._controller.close_connection, _name(connection), code, text)

    def drop_connection(self, connection: Connection) -> None:
        """Reset a connection's socket without a Close, as a failing network would."""
        self.call(self._controller.drop_connection, _name(connection))


class AsyncBrokerView:
    """A view's waits as coroutines: they poll from a worker thread, so clients on the
    test's event loop keep running meanwhile."""

    def __init__(self, view: BrokerView) -> None:
        self._view = view

    async def _off_loop(self, fn: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(functools.partial(fn, *args))

    async def wait(self, condition: Wait, timeout: float = TIMEOUT) -> Any:
        return await self._off_loop(self._view.wait, condition, timeout)

    async def wait_for_queue_depth(self, queue: str, depth: int, timeout: float = TIMEOUT
                                   ) -> QueueInfo:
        return await self._off_loop(self._view.wait_for_queue_depth, queue, depth, timeout)

    async def wait_for_message(self, queue: str, predicate: Callable[[MessageInfo], bool]
                               | None = None, timeout: float = TIMEOUT) -> MessageInfo:
        return await self._off_loop(self._view.wait_for_message, queue, predicate, timeout)

    async def wait_until_acked(self, queue: str, timeout: float = TIMEOUT) -> QueueInfo:
        return await self._off_loop(self._view.wait_until_acked, queue, timeout)

    async def wait_for_consumers(self, queue: str, count: int = 1, timeout: float = TIMEOUT
                                 ) -> list[ConsumerInfo]:
        return await self._off_loop(self._view.wait_for_consumers, queue, count, timeout)

    async def wait_for_connections(self, count: int = 1, timeout: float = TIMEOUT
                                   ) -> list[ConnectionInfo]:
        return await self._off_loop(self._view.wait_for_connections, count, timeout)

    async def restart(self) -> None:
        """`EmbeddedBroker.restart`, awaited."""
        view = self._view
        if not isinstance(view, EmbeddedBroker):
            raise TypeError("only the broker restarts, not one vhost's view")
        await self._off_loop(view.restart)


class Clock:
    """The broker's clock: real time unless a test moves it on."""

    def __init__(self, broker: EmbeddedBroker) -> None:
        self._broker = broker

    def advance(self, seconds: float) -> None:
        """Move the broker's time on by `seconds`, at once: TTLs expire, delayed messages
        fire, queues expire and consumer timeouts trip, in deadline order. Heartbeats
        stay on the real clock."""
        broker = self._broker
        broker.call(broker._controller.advance_clock, seconds)

    @property
    def offset(self) -> float:
        """How far the clock was moved on in total, in seconds."""
        return self._broker._controller.clock.offset


class EmbeddedBroker(BrokerView):
    """A running broker: its default vhost's view, and the broker-wide controls."""

    def __init__(self, controller: Controller, loop: _Loop) -> None:
        super().__init__(controller, loop, controller.settings.default_vhost)
        self.clock = Clock(self)

    @property
    def server(self) -> Server:
        """The running server (a new one after `restart`), for what the views lack."""
        return self._controller.server

    @property
    def host(self) -> str:
        return self._controller.settings.host

    @property
    def port(self) -> int:
        return self._controller.settings.port

    def block_publishers(self) -> None:
        """Raise a resource alarm: publishing connections get connection.blocked."""
        self.call(self._controller.block_publishers)

    def unblock_publishers(self) -> None:
        self.call(self._controller.unblock_publishers)

    def refuse_connections(self, seconds: float) -> None:
        """Close new connections at once for `seconds` (0: accept them again)."""
        self.call(self._controller.refuse_connections, seconds)

    def restart(self) -> None:
        """Stop and start the broker on the same port: every connection is closed, and
        what is durable survives when the broker has a data directory (`data_dir=`)."""
        self._loop.wait(self._controller.restart)

    @contextmanager
    def new_vhost(self, name: str | None = None) -> Iterator[BrokerView]:
        """A fresh vhost (`test-N` unless named) that the default user may use, deleted
        with everything in it (its connections closed) when the block exits."""
        created = self.call(self._controller.create_vhost, name)
        try:
            yield BrokerView(self._controller, self._loop, created)
        finally:
            with contextlib.suppress(RuntimeError):  # the broker stopped first
                self.call(self._controller.delete_vhost, created)


def _settings(overrides: dict[str, Any]) -> Settings:
    return replace(Settings(host="127.0.0.1", port=0, management_port=0, prometheus_port=0,
                            stomp_port=0, mqtt_port=0, web_stomp_port=0, web_mqtt_port=0,
                            mqtt_tls_port=0, stomp_tls_port=0),
                   **overrides)


@asynccontextmanager
async def running_broker(**overrides: Any) -> AsyncIterator[EmbeddedBroker]:
    """Run a broker in the current event loop on an ephemeral loopback port; `overrides`
    are `Settings` fields (e.g. `data_dir=...`)."""
    controller = Controller(_settings(overrides))
    async with anyio.create_task_group() as tasks:
        await tasks.start(controller.run)
        try:
            yield EmbeddedBroker(controller, _Loop())
        finally:
            controller.stop()


@contextmanager
def broker_in_thread(**overrides: Any) -> Iterator[EmbeddedBroker]:
    """Run a broker on its own event loop in a background thread."""
    with start_blocking_portal() as portal:
        controller = Controller(_settings(overrides))
        stopped, _ = portal.start_task(controller.run)
        try:
            yield EmbeddedBroker(controller, _Loop(portal))
        finally:
            portal.call(controller.stop)
            stopped.result()


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
