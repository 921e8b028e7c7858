"""A broker under a test's control: its lifecycle (start, restart keeping durable state,
instant shutdown), its virtual clock, per-test vhosts and the faults a test injects.

The controller runs the broker in its own task (`run`) and keeps it on the same ports
across restarts. Every method but `restart` is synchronous and must be called on the
broker's event loop; `amqpbroker.testing` wraps them for other threads, and
`control.http` serves them as JSON.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any

import anyio
from anyio.abc import TaskStatus
from starlette.types import ASGIApp

from amqpbroker.app import running
from amqpbroker.broker.timers import Timers, VirtualClock
from amqpbroker.config import Settings
from amqpbroker.control import inspection
from amqpbroker.transport.server import Server

BLOCK_ALARM = "test"  # the resource alarm `block_publishers` raises
_vhost_numbers = itertools.count(1)


class NotRunning(RuntimeError):
    """The broker is between a stop and its restart (or not started yet)."""


class Controller:
    """One broker and the operations a test performs on it."""

    def __init__(self, settings: Settings, *, shutdown_grace: float = 0.0) -> None:
        self.settings = settings
        self.clock = VirtualClock()
        self.shutdown_grace = shutdown_grace
        self.control_app: ASGIApp | None = None  # served under /api/test on the management port
        self._server: Server | None = None
        self._restart = anyio.Event()
        self._restarted = anyio.Event()
        self._stop = anyio.Event()
        self._tasks: anyio.abc.TaskGroup | None = None

    @property
    def server(self) -> Server:
        if self._server is None:
            raise NotRunning("the broker is not running")
        return self._server

    # --- lifecycle ------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve until `stop`, restarting on `restart`; started once the broker listens."""
        async with anyio.create_task_group() as self._tasks:
            await self._serve(task_status)

    async def _serve(self, task_status: TaskStatus[None]) -> None:
        started = False
        while True:
            timers = Timers(clock=self.clock, wall_clock=self.clock.wall)
            async with running(self.settings, timers=timers, shutdown_grace=self.shutdown_grace,
                               control_app=self.control_app) as server:
                self._server = server
                self.settings = replace(self.settings, port=server.port,
                                        tls_port=server.tls_port)
                self._restart = anyio.Event()
                self._restarted.set()
                if not started:
                    started = True
                    task_status.started()
                if not self._stop.is_set():
                    await self._restart.wait()
            self._server = None
            if self._stop.is_set():
                return

    def spawn(self, fn: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run `fn` beside the broker (e.g. a restart asked for by an HTTP request)."""
        if self._tasks is None:
            raise NotRunning("the broker is not running")
        self._tasks.start_soon(fn)

    def stop(self) -> None:
        """End `run`: the clients get their Close at once, without waiting for answers.
        A restart still waiting returns, with the broker stopped."""
        self._stop.set()
        self._restart.set()
        self._restarted.set()

    async def restart(self) -> None:
        """Stop the broker and start it again from its data directory on the same ports:
        durable definitions and persistent messages survive, as they would a restart of
        the process; without a data directory nothing does. After `stop`, it does nothing."""
        if self._stop.is_set():
            return
        self._restarted = anyio.Event()
        self._restart.set()
        await self._restarted.wait()

    # --- the clock -----------------------------------------------------------------------

    def advance_clock(self, seconds: float) -> float:
        """Move the broker's time on; returns the seconds moved in total so far."""
        self.server.advance_clock(seconds)
        return self.clock.offset

    # --- vhosts --------------------------------------------------------------------------

    def create_vhost(self, name: str | None = None) -> str:
        """A new vhost (`test-N` unless named) that the default user may use fully."""
        broker = self.server.broker
        name = name or f"test-{next(_vhost_numbers)}"
        broker.add_vhost(name)
        broker.access.set_permission(self.settings.default_user, name)
        return name

    def delete_vhost(self, name: str) -> None:
        """Drop a vhost and everything in it, closing its connections at once."""
        for client in list(self.server.clients):
            if client.session is not None and client.session.vhost.name == name:
                client.shutdown(f"vhost '{name}' is deleted")
        self.server.broker.delete_vhost(name)

    # --- faults --------------------------------------------------------------------------

    def close_connection(self, name: str, code: int = 320,
                         text: str = "closed by the test") -> None:
        """Close a connection from the server side with `code` (320 CONNECTION_FORCED)."""
        inspection.client_named(self.server, name).shutdown(text, code)

    def drop_connection(self, name: str) -> None:
        """Reset a connection's socket with no Close, as a network failure would."""
        self.server.drop(inspection.client_named(self.server, name))

    def block_publishers(self) -> None:
        """Raise a resource alarm: publishers get connection.blocked and are not read."""
        self.server.broker.set_alarm(BLOCK_ALARM, True)

    def unblock_publishers(self) -> None:
        self.server.broker.set_alarm(BLOCK_ALARM, False)

    def refuse_connections(self, seconds: float) -> None:
        """Close new connections at once for `seconds` (0: accept again)."""
        self.server.refuse_connections(seconds)
