"""Assembly of a running broker: settings -> broker model + TCP server, and its lifecycle."""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import fields

import anyio
from starlette.types import ASGIApp

from amqpbroker.broker.broker import Broker
from amqpbroker.broker.buffers import PageCodec, Paging
from amqpbroker.broker.recovery import recover
from amqpbroker.broker.timers import Timers
from amqpbroker.config import Settings, memory_watermark
from amqpbroker.definitions import apply, load
from amqpbroker.management.api import create_app
from amqpbroker.management.metrics import metrics_app
from amqpbroker.management.statistics import Statistics
from amqpbroker.protocol.amqp.connection import Limits
from amqpbroker.store.memory import MemoryStore
from amqpbroker.store.pages import Pages
from amqpbroker.store.sqlite import SqliteStore
from amqpbroker.transport.alarms import ResourceLimits, total_memory
from amqpbroker.transport.bridge import build_message
from amqpbroker.transport.http import HttpListener
from amqpbroker.transport.mqtt_node import MqttNode
from amqpbroker.transport.owner import Frontend
from amqpbroker.transport.server import SHUTDOWN_GRACE, Server
from amqpbroker.transport.stomp import StompClient
from amqpbroker.transport.tls import TLSSettings
from amqpbroker.transport.websocket import MQTT, STOMP, WebProtocol, WebSocketApp

log = logging.getLogger("amqpbroker")

WEB_HEADROOM = 1024 * 1024  # a WebSocket message's bytes beyond its largest body


def build_broker(settings: Settings, timers: Timers | None = None) -> Broker:
    """The broker (on `timers`' clock, by default the real one), recovered from its data
    directory if it has one, with the definitions file applied. Raises StoreError or
    DefinitionsError naming what cannot be used."""
    definitions = load(settings.definitions) if settings.definitions else None
    store = SqliteStore(settings.data_dir) if settings.data_dir else MemoryStore()
    timeout = settings.consumer_timeout
    loopback_users = tuple(u.strip() for u in settings.loopback_users.split(",") if u.strip())
    paging = None
    if settings.queue_memory_limit:
        paging = Paging(Pages(settings.data_dir), settings.queue_memory_limit,
                        PageCodec(build_message, store.read_message if store.durable else None))
    broker = Broker(default_user=settings.default_user, default_pass=settings.default_pass,
                    default_vhost=settings.default_vhost,
                    consumer_timeout=timeout / 1000.0 if timeout else None, store=store,
                    loopback_users=loopback_users, paging=paging, timers=timers)
    started = time.monotonic()
    count = recover(broker, store.load(), build_message)
    if settings.data_dir:
        log.info("recovered %d messages from %s in %.2fs", count, settings.data_dir,
                 time.monotonic() - started)
    if definitions is not None:
        apply(broker, definitions)
        store.write_batch(store.take_batch())
        log.info("applied definitions from %s: %s", settings.definitions,
                 definitions.summary())
    return broker


def connection_limits(settings: Settings) -> Limits:
    """The limits of every client connection, taken from the settings."""
    return Limits(**{field.name: getattr(settings, field.name) for field in fields(Limits)})


def web_apps(settings: Settings, server: Server) -> list[tuple[WebSocketApp, int]]:
    """The WebSocket apps that are on (Web STOMP, Web MQTT) and their ports. Each serves
    the owners of the server's frontend of the same name: a protocol with no frontend (no
    "mqtt" one yet) is not served over WebSocket either."""
    factories = {frontend.name: frontend.factory for frontend in server.frontends}
    wanted: list[tuple[WebProtocol, int]] = [(STOMP, settings.web_stomp_port),
                                             (MQTT, settings.web_mqtt_port)]
    return [(WebSocketApp(server, protocol, factories[protocol.name]), port)
            for protocol, port in wanted if port and protocol.name in factories]


def build(settings: Settings, timers: Timers | None = None) -> Server:
    """The broker and its server."""
    broker = build_broker(settings, timers)
    limits = connection_limits(settings)
    resources = ResourceLimits(
        memory=memory_watermark(settings.memory_high_watermark, total_memory()),
        data_dir=settings.data_dir, disk_free=settings.disk_free_limit)
    tls = None
    if settings.tls_cert:
        tls = TLSSettings(certfile=settings.tls_cert,
                          keyfile=settings.tls_key or settings.tls_cert,
                          cafile=settings.tls_ca, verify_peer=settings.tls_verify_peer,
                          fail_if_no_peer_cert=settings.tls_fail_if_no_peer_cert)
    mqtt = MqttNode(default_user=settings.default_user, default_pass=settings.default_pass,
                    default_vhost=settings.default_vhost)
    mqtt.attach(broker)
    return Server(broker, limits, host=settings.host, port=settings.port, resources=resources,
                  tls=tls, tls_port=settings.tls_port, max_connections=settings.max_connections,
                  frontends=(Frontend("mqtt", settings.mqtt_port, mqtt,
                                      settings.mqtt_tls_port),
                             Frontend("stomp", settings.stomp_port, StompClient,
                                      settings.stomp_tls_port)))


@asynccontextmanager
async def running(settings: Settings, *, timers: Timers | None = None,
                  shutdown_grace: float = SHUTDOWN_GRACE,
                  control_app: ASGIApp | None = None) -> AsyncIterator[Server]:
    """Serve in the background of the current event loop until the block exits; then give
    the clients `shutdown_grace` seconds to answer their Close. `control_app` is served
    under `/api/test` on the management port."""
    server = build(settings, timers)
    listeners: list[HttpListener] = []
    web: list[HttpListener] = []  # closed after the clients were told of the shutdown
    statistics = Statistics(server, settings.collect_statistics_interval / 1000)
    try:
        for app, port in web_apps(settings, server):  # a message holds a whole frame
            web.append(HttpListener(app, settings.host, port,
                                    ws_max_size=settings.max_message_size + WEB_HEADROOM))
        if settings.management_port:
            listeners.append(HttpListener(create_app(server, statistics, control_app),
                                          settings.host, settings.management_port))
        if settings.prometheus_port:
            listeners.append(HttpListener(metrics_app(server), settings.host,
                                          settings.prometheus_port))
        await server.listen()
    except OSError:
        for listener in listeners + web:
            listener.sock.close()
        server.broker.store.close()
        raise
    async with anyio.create_task_group() as tasks:
        await tasks.start(server.serve)
        for listener in listeners + web:
            await tasks.start(listener.serve)
        if settings.management_port:
            await tasks.start(statistics.run)
        try:
            yield server
        finally:
            for listener in listeners:
                listener.close()
            await server.shutdown(shutdown_grace)
            for listener in web:
                listener.close()
            with anyio.move_on_after(SHUTDOWN_GRACE):  # their sockets closed, not left open
                for listener in web:
                    await listener.stopped.wait()
            server.broker.store.close()
            tasks.cancel_scope.cancel()  # the statistics sampler


async def serve_until_signalled(settings: Settings) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with running(settings) as server:
            log.info("amqpbroker listening on amqp://%s:%d (vhost %r)",
                     settings.host, server.port, settings.default_vhost)
            if settings.management_port:
                log.info("management API on http://%s:%d/api/", settings.host,
                         settings.management_port)
            if settings.prometheus_port:
                log.info("Prometheus metrics on http://%s:%d/metrics", settings.host,
                         settings.prometheus_port)
            if "mqtt" in server.frontend_ports:
                log.info("MQTT on %s:%d", settings.host, server.frontend_ports["mqtt"])
            if "stomp" in server.frontend_ports:
                log.info("STOMP on %s:%d", settings.host, server.frontend_ports["stomp"])
            for app, port in web_apps(settings, server):
                log.info("Web %s on ws://%s:%d/ws", app.protocol.name.upper(), settings.host,
                         port)
            async for signum in signals:
                log.info("received %s, shutting down", signal.Signals(signum).name)
                break


def run(settings: Settings,
        main: Callable[[Settings], Awaitable[None]] = serve_until_signalled) -> None:
    """Run `main` (by default: the broker until SIGINT or SIGTERM) in the foreground, on
    uvloop when it is installed."""
    try:
        import uvloop  # noqa: F401

        options = {"use_uvloop": True}
    except ImportError:
        options = {}
    anyio.run(main, settings, backend="asyncio", backend_options=options)
