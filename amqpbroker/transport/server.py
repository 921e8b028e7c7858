"""The TCP listeners and the per-connection tasks: reader, writer and deadline ticker.

Each connection runs in its own task group inside its own exception boundary: whatever
goes wrong with one peer ends that connection only. The tasks talk to the connection's
owner (`bridge.ClientConnection` for AMQP; the owner of another protocol's `Frontend`,
through `owner.Owner`) and to nothing behind it. `serve_client` runs the same tasks for a
connection that arrived another way, as a byte stream (a WebSocket's, `websocket.py`).

Connections (heartbeats, handshake timeouts) run on the real clock, whatever clock the
broker's timers use. For test suites the server can also refuse new connections for a
while, drop one connection's socket without a close (a WebSocket's too), and move the
broker's clock on.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import logging
import math
import os
import socket
import ssl
import struct
import time

import anyio
from anyio.abc import ByteStream, SocketAttribute, SocketStream, TaskStatus

from amqpbroker.broker.broker import Broker
from amqpbroker.protocol.amqp.connection import Limits
from amqpbroker.transport.alarms import HeldMemory, ResourceLimits, watch_resources
from amqpbroker.transport.bridge import ClientConnection
from amqpbroker.transport.committer import Committer, StoreFailed
from amqpbroker.transport.owner import Frontend, OwnerFactory
from amqpbroker.transport.tls import Listener, TLSSettings, peer_common_name, server_context

log = logging.getLogger("amqpbroker.server")

READ_SIZE = 256 * 1024
SHUTDOWN_GRACE = 2.0  # how long a shutdown waits for clients to answer their Close
FLUSH_GRACE = 0.02  # how long an instant shutdown lets the Close frames go out
TLS_HANDSHAKE_TIMEOUT = 5.0  # RabbitMQ's ssl_handshake_timeout


def _address(address: object) -> str:
    """"host:port" of a (host, port, ...) tuple ("unknown" for anything else)."""
    try:
        host, port = address[:2]  # type: ignore[index]
    except (TypeError, ValueError):
        return "unknown"
    return f"{host}:{port}"


class _Wakeup:
    """A resettable signal from the broker (any task) to one connection's writer."""

    __slots__ = ("event",)

    def __init__(self) -> None:
        self.event = anyio.Event()

    def set(self) -> None:
        self.event.set()

    async def wait(self) -> None:
        await self.event.wait()
        self.event = anyio.Event()


class Server:
    """Accepts AMQP connections for one broker."""

    def __init__(self, broker: Broker, limits: Limits, *, host: str, port: int,
                 resources: ResourceLimits, tls: TLSSettings | None = None,
                 tls_port: int = 5671, max_connections: int | None = None,
                 frontends: tuple[Frontend, ...] = ()) -> None:
        self.broker = broker
        self.host = host
        self.port = port
        self.limits = limits
        self.clients: set[ClientConnection] = set()
        self.clock = time.monotonic
        self.refusing_until = 0.0
        self._streams: dict[ClientConnection, ByteStream] = {}
        self.resources = resources
        self.memory = HeldMemory(broker, self.connection_memory)
        self.tls = tls
        self.tls_port = tls_port
        self.max_connections = max_connections
        self.frontends = frontends
        self.frontend_ports: dict[str, int] = {}  # the other protocols' bound ports
        self._frontend_listeners: list[tuple[anyio.abc.Listener[SocketStream],
                                             OwnerFactory]] = []
        self._tls_listeners: list[tuple[Listener, OwnerFactory]] = []
        self.committer = Committer(broker.store)
        broker.write_soon = self.committer.start
        self._unblocked = anyio.Event()
        broker.alarm_listeners.append(self._alarm)
        self._tasks: anyio.abc.TaskGroup | None = None
        self._listener: anyio.abc.Listener[SocketStream]
        self._closing = False
        self._all_gone = anyio.Event()

    async def listen(self) -> None:
        """Bind the listening sockets; raises OSError (e.g. a port in use, unusable TLS
        files)."""
        self._listener = await anyio.create_tcp_listener(
            local_host=self.host, local_port=self.port)
        self.port = self._listener.extra(SocketAttribute.local_port)
        try:
            if self.tls is not None:
                context = server_context(self.tls)
                self.tls_port = await self._listen_tls(context, self.tls_port,
                                                       ClientConnection)
                for frontend in self.frontends:
                    if frontend.tls_port:
                        self.frontend_ports[frontend.name + "/ssl"] = await self._listen_tls(
                            context, frontend.tls_port, frontend.factory)
            for frontend in self.frontends:
                if frontend.port:
                    listener = await anyio.create_tcp_listener(local_host=self.host,
                                                               local_port=frontend.port)
                    self.frontend_ports[frontend.name] = listener.extra(
                        SocketAttribute.local_port)
                    self._frontend_listeners.append((listener, frontend.factory))
        except OSError:
            for opened in self._listeners():
                await opened.aclose()
            for tls, _ in self._tls_listeners:
                await tls.aclose()
            raise

    async def _listen_tls(self, context: ssl.SSLContext, port: int,
                          factory: OwnerFactory) -> int:
        """Bind a TLS listener for `factory`'s protocol; returns the bound port."""
        tcp = await anyio.create_tcp_listener(local_host=self.host, local_port=port)
        self._tls_listeners.append((Listener(tcp, context, standard_compatible=False,
                                             handshake_timeout=TLS_HANDSHAKE_TIMEOUT),
                                    factory))
        return tcp.extra(SocketAttribute.local_port)

    def _listeners(self) -> list[anyio.abc.Listener[SocketStream]]:
        """The plain TCP listeners: AMQP's and the other protocols'."""
        return [self._listener] + [listener for listener, _ in self._frontend_listeners]

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Accept connections until `shutdown`; `listen` must have been called."""
        async with contextlib.AsyncExitStack() as stack:
            for listener in self._listeners():
                await stack.enter_async_context(listener)
            for tls, _ in self._tls_listeners:
                await stack.enter_async_context(tls)
            tasks = await stack.enter_async_context(anyio.create_task_group())
            self._tasks = tasks
            tasks.start_soon(self._run_timers)
            tasks.start_soon(self.committer.run)
            tasks.start_soon(watch_resources, self.broker, self.resources, self.memory)
            for tls, factory in self._tls_listeners:
                tasks.start_soon(tls.serve, functools.partial(self._handle, factory=factory),
                                 tasks)
            for listener, factory in self._frontend_listeners:
                tasks.start_soon(functools.partial(
                    listener.serve, functools.partial(self._handle, factory=factory),
                    task_group=tasks))
            task_status.started()
            await self._listener.serve(self._handle, task_group=tasks)

    async def _run_timers(self) -> None:
        """The broker's one scheduler: sleep until the earliest deadline (or until an
        earlier one is set), then run what is due."""
        timers = self.broker.timers
        rearm = _Wakeup()
        timers.on_earlier = rearm.set
        while True:
            deadline = timers.next_deadline()
            delay = 3600.0 if deadline is None else deadline - timers.now()
            with anyio.move_on_after(max(delay, 0.0)):
                await rearm.wait()
            try:
                timers.run_due(timers.now())
                self.broker.dispatch_ready()
            except Exception:
                log.exception("a timer failed")
            self.committer.kick()

    def connection_memory(self) -> int:
        """Bytes the connections hold: unsent output, unparsed input, unacked messages."""
        return sum(client.memory() for client in self.clients)

    def _alarm(self, blocked: bool) -> None:
        """A resource alarm changed: block or release every publishing connection."""
        for client in self.clients:
            client.set_blocked(blocked)
        if blocked:
            self._unblocked = anyio.Event()
        else:
            self._unblocked.set()

    def advance_clock(self, seconds: float) -> None:
        """Move the broker's (virtual) clock on: what falls due runs in deadline order."""
        self.broker.timers.advance(seconds, self.broker.dispatch_ready)
        self.committer.kick()

    def refuse_connections(self, seconds: float) -> None:
        """Close new connections at once for `seconds` (0: accept again)."""
        self.refusing_until = self.clock() + seconds

    def drop(self, client: ClientConnection) -> None:
        """Reset one client's TCP connection with no Close (nor a WebSocket close frame):
        to the client, a network failure. The socket is the stream's (a WebSocket stream
        gives the one under it); it lingers for nothing, so the close that follows resets
        the connection, and it is shut down through a duplicate of its descriptor (the
        event loop's socket objects may refuse `shutdown`, uvloop's do)."""
        stream = self._streams.get(client)
        sock = None if stream is None else stream.extra(SocketAttribute.raw_socket, None)
        if sock is None:
            return
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with socket.socket(fileno=os.dup(sock.fileno())) as duplicate:
            duplicate.shutdown(socket.SHUT_RDWR)

    async def shutdown(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Tell every client 320 CONNECTION_FORCED and give them `grace` seconds to
        answer, then stop. With no grace the Close frames are only sent, not awaited."""
        self._closing = True
        for client in list(self.clients):
            client.shutdown("broker forced connection closure with reason 'shutdown'")
        if grace:
            with anyio.move_on_after(grace):
                if self.clients:
                    await self._all_gone.wait()
        else:
            with anyio.move_on_after(FLUSH_GRACE):
                while any(client.has_output for client in self.clients):
                    await anyio.sleep(0)
        with anyio.move_on_after(SHUTDOWN_GRACE), \
                contextlib.suppress(StoreFailed):  # logged when the write failed
            await self.committer.flush()
        if self._tasks is not None:
            self._tasks.cancel_scope.cancel()

    def admits(self) -> bool:
        """Whether a new connection may open now: not shutting down, under the connection
        limit and not refusing connections."""
        full = self.max_connections is not None and len(self.clients) >= self.max_connections
        if full:
            log.warning("connection refused: the limit of %d connections is reached",
                        self.max_connections)
        return not (self._closing or full or self.clock() < self.refusing_until)

    async def _handle(self, stream: SocketStream,
                      factory: OwnerFactory = ClientConnection) -> None:
        if not self.admits():
            await stream.aclose()
            return
        await self.serve_client(stream, factory,
                                stream.extra(SocketAttribute.remote_address, None),
                                local=stream.extra(SocketAttribute.local_address, None),
                                external_user=peer_common_name(stream))

    async def serve_client(self, stream: ByteStream, factory: OwnerFactory, address: object,
                           *, local: object = None, external_user: str | None = None) -> None:
        """Serve one connection from `address` to `local` (the listener's end; both
        (host, port, ...) tuples) over `stream` (a socket, or any byte stream such as a
        WebSocket's messages) with the owner that `factory` builds, until it ends;
        `stream` is closed on return. Meanwhile the owner is one of `clients`, seen by
        alarms, shutdown and the management API (which names it "peer -> local")."""
        peer = _address(address)
        try:
            loopback = ipaddress.ip_address(address[0]).is_loopback  # type: ignore[index]
        except (TypeError, ValueError, IndexError):
            loopback = False
        wakeup, rearm = _Wakeup(), _Wakeup()
        client = factory(self.broker, self.limits, peer=peer, now=self.clock(),
                         wake=wakeup.set, rearm=rearm.set, loopback=loopback,
                         external_user=external_user)
        client.local = _address(local)
        client.set_blocked(bool(self.broker.alarms))
        self.clients.add(client)
        self._streams[client] = stream
        self.broker.churn.connection_created += 1
        try:
            async with stream, anyio.create_task_group() as tasks:
                tasks.start_soon(self._reader, client, stream, tasks)
                tasks.start_soon(self._writer, client, stream, wakeup, tasks)
                tasks.start_soon(self._ticker, client, wakeup, rearm)
        except Exception:
            log.exception("%s: connection failed", peer)
        finally:
            client.connection_lost("connection closed")
            self.clients.discard(client)
            self._streams.pop(client, None)
            self.broker.churn.connection_closed += 1
            log.info("%s: connection closed: %s", peer, client.close_reason)
            if self._closing and not self.clients:
                self._all_gone.set()

    async def _reader(self, client: ClientConnection, stream: ByteStream,
                      tasks: anyio.abc.TaskGroup) -> None:
        try:
            while not client.closed:
                store = self.broker.store
                if client.paused:
                    client.tell_blocked()
                    client.wake()
                    await self._unblocked.wait()
                    before = store.recorded
                    client.resume(self.clock())
                else:
                    data = await stream.receive(READ_SIZE)
                    before = store.recorded
                    client.receive(data, self.clock())
                if store.recorded != before:
                    await self._hold(client, store.recorded)
            client.wake()
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError,
                OSError):
            client.connection_lost("connection lost")
            tasks.cancel_scope.cancel()

    async def _hold(self, client: ClientConnection, mark: int) -> None:
        """The pass recorded changes: its output waits for their commit (the writer sends
        it then). Reading goes on meanwhile, so the next pass overlaps this commit; but
        not further: a pass still waiting for its commit before this one is waited for."""
        previous = client.hold(mark)
        self.committer.kick()
        if previous > self.committer.committed:
            try:
                await self.committer.wait(previous)
            except StoreFailed:
                self._store_failed(client)

    @staticmethod
    def _store_failed(client: ClientConnection) -> None:
        """What waited for a commit that failed is not sent: the connection is closed."""
        client.drop_held()
        client.shutdown_on_error("the store cannot be written")

    async def _writer(self, client: ClientConnection, stream: ByteStream, wakeup: _Wakeup,
                      tasks: anyio.abc.TaskGroup) -> None:
        committer = self.committer
        try:
            while True:
                mark = client.held_until
                if mark:
                    if mark > committer.committed:
                        try:
                            await committer.wait(mark)
                        except StoreFailed:
                            self._store_failed(client)
                    client.release(committer.committed)
                data = client.take_output(self.clock())
                if data:
                    await stream.send(data)
                    client.drained()
                if client.closed and not client.has_output:
                    break
                if not client.has_output:
                    await wakeup.wait()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            client.connection_lost("connection lost")
        tasks.cancel_scope.cancel()

    async def _ticker(self, client: ClientConnection, wakeup: _Wakeup, rearm: _Wakeup) -> None:
        """Sleep until the connection's next deadline (heartbeat or handshake timeout), or
        until a state change moves it; then let the connection act on the time."""
        while True:
            delay = client.next_deadline() - self.clock()
            with anyio.move_on_after(max(delay, 0.0) if math.isfinite(delay) else 3600.0):
                await rearm.wait()
            if not client.tick(self.clock()):
                wakeup.set()
                return
            if client.has_output:
                wakeup.set()
