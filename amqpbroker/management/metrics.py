"""Prometheus metrics in the shape of RabbitMQ's `rabbitmq_prometheus` plugin: the
collector that reads the broker model and the server at scrape time, and the ASGI app
serving `/metrics` (aggregated) and `/metrics/per-object` (queues labelled `vhost` and
`queue`).

Scrapes run on the broker's event loop, so the model is read directly, in one pass over
the connections (channels, unacked deliveries) and one over the queues.
"""

from __future__ import annotations

import os
import platform
import resource
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, make_asgi_app
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)

from amqpbroker import __version__
from amqpbroker.management import statistics
from amqpbroker.transport.alarms import ResourceLimits, resident_memory

if TYPE_CHECKING:
    from amqpbroker.broker.queue import Queue
    from amqpbroker.transport.server import Server

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

NODE = f"rabbit@{socket.gethostname()}"
CLUSTER_ID = f"rabbitmq-cluster-id-{uuid.uuid5(uuid.NAMESPACE_DNS, NODE)}"
RABBITMQ_VERSION = "3.13.0"
PRODUCT = "amqpbroker"
_IMPORTED = time.monotonic()

# (name, help) of the per-queue gauges: summed on /metrics, per queue on per-object.
QUEUE_GAUGES = (
    ("rabbitmq_queue_messages_ready", "Messages ready to be delivered to consumers"),
    ("rabbitmq_queue_messages_unacked",
     "Messages delivered to consumers but not yet acknowledged"),
    ("rabbitmq_queue_messages", "Sum of ready and unacknowledged messages - total queue depth"),
    ("rabbitmq_queue_consumers", "Consumers on a queue"),
)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def uptime() -> float:
    """Seconds since this process started (since this module was loaded off Linux)."""
    try:
        with open("/proc/self/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
        with open("/proc/uptime") as since_boot:
            system = float(since_boot.read().split()[0])
        return max(system - int(fields[19]) / os.sysconf("SC_CLK_TCK"), 0.0)
    except (OSError, ValueError, IndexError):
        return time.monotonic() - _IMPORTED


def open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


def fd_limit() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_disk(limits: ResourceLimits) -> int:
    """Free bytes where the broker writes: the data directory, or without one the
    temporary directory (where paging spills)."""
    try:
        return shutil.disk_usage(limits.data_dir or tempfile.gettempdir()).free
    except OSError:
        return 0


def _resident() -> int:
    try:
        return resident_memory()
    except (OSError, ValueError):
        return 0


class BrokerCollector:
    """A custom collector over one server: node identity, object counts, queue depths,
    resources and alarms. `per_object` labels the queue gauges per queue."""

    def __init__(self, server: Server, per_object: bool = False) -> None:
        self.server = server
        self.per_object = per_object

    def collect(self) -> Iterator[Metric]:
        yield from self._identity()
        yield from self._objects()
        yield from self._counters()
        yield from self._resources()

    def _counters(self) -> Iterator[Metric]:
        """The node's message counters and object churn, summed over every vhost."""
        node = statistics.node_totals(statistics.totals(self.server),
                                      self.server.broker.deleted_vhost_stats)
        delivered = node.deliver + node.deliver_no_ack + node.get + node.get_no_ack
        unroutable = node.return_unroutable + node.drop_unroutable
        for name, documentation, value in (
            ("received", "Total number of messages received from publishers", node.publish),
            ("received_confirm", "Total number of messages received from publishers "
             "expecting confirmations", node.confirm),
            ("routed", "Total number of messages routed to queues or streams",
             node.publish - unroutable),
            ("confirmed", "Total number of messages confirmed to publishers", node.confirm),
            ("delivered", "Total number of messages delivered to consumers", delivered),
            ("delivered_consume_auto_ack", "Total number of messages delivered to consumers "
             "using basic.consume with automatic acknowledgment", node.deliver_no_ack),
            ("delivered_consume_manual_ack", "Total number of messages delivered to consumers "
             "using basic.consume with manual acknowledgment", node.deliver),
            ("delivered_get_auto_ack", "Total number of messages fetched with basic.get in "
             "automatic acknowledgement mode", node.get_no_ack),
            ("delivered_get_manual_ack", "Total number of messages fetched with basic.get in "
             "manual acknowledgement mode", node.get),
            ("get_empty", "Total number of times basic.get operations fetched no message",
             node.get_empty),
            ("redelivered", "Total number of messages redelivered to consumers",
             node.redeliver),
            ("acknowledged", "Total number of message acknowledgements received from "
             "consumers", node.ack),
            ("unroutable_dropped", "Total number of messages published as non-mandatory "
             "into an exchange and dropped as unroutable", node.drop_unroutable),
            ("unroutable_returned", "Total number of messages published as mandatory into "
             "an exchange and returned to the publisher as unroutable",
             node.return_unroutable),
        ):
            yield CounterMetricFamily(f"rabbitmq_global_messages_{name}", documentation,
                                      value=value)
        for name, documentation, value in (
            ("published", "Total number of messages published into an exchange on a channel",
             node.publish),
            ("confirmed", "Total number of messages published into an exchange and "
             "confirmed on the channel", node.confirm),
            ("unroutable_returned", "Total number of messages published as mandatory into "
             "an exchange and returned to the publisher as unroutable",
             node.return_unroutable),
            ("unroutable_dropped", "Total number of messages published as non-mandatory into "
             "an exchange and dropped as unroutable", node.drop_unroutable),
            ("delivered_ack", "Total number of messages delivered to consumers in manual "
             "acknowledgement mode", node.deliver),
            ("delivered", "Total number of messages delivered to consumers in automatic "
             "acknowledgement mode", node.deliver_no_ack),
            ("redelivered", "Total number of messages redelivered to consumers",
             node.redeliver),
            ("acked", "Total number of messages acknowledged by consumers", node.ack),
        ):
            yield CounterMetricFamily(f"rabbitmq_channel_messages_{name}", documentation,
                                      value=value)
        clients = statistics.open_clients(self.server)
        yield _gauge("rabbitmq_global_publishers", "Current number of publishers",
                     sum(1 for c in clients if c.publisher))
        yield _gauge("rabbitmq_global_consumers", "Current number of consumers",
                     sum(len(c.session.channels[n].consumers) for c in clients
                         if c.session is not None for n in c.session.channels))
        churn = self.server.broker.churn
        for name, documentation, value in (
            ("connections_opened", "Total number of connections opened",
             churn.connection_created),
            ("connections_closed", "Total number of connections closed or terminated",
             churn.connection_closed),
            ("channels_opened", "Total number of channels opened", churn.channel_created),
            ("channels_closed", "Total number of channels closed", churn.channel_closed),
            ("queues_declared", "Total number of queues declared", churn.queue_declared),
            ("queues_created", "Total number of queues created", churn.queue_created),
            ("queues_deleted", "Total number of queues deleted", churn.queue_deleted),
        ):
            yield CounterMetricFamily(f"rabbitmq_{name}", documentation, value=value)

    def _identity(self) -> Iterator[Metric]:
        yield InfoMetricFamily("rabbitmq_identity", "RabbitMQ node & cluster identity info", {
            "rabbitmq_node": NODE, "rabbitmq_cluster": NODE,
            "rabbitmq_cluster_permanent_id": CLUSTER_ID})
        yield InfoMetricFamily("rabbitmq_build", "RabbitMQ & Erlang/OTP version info", {
            "rabbitmq_version": RABBITMQ_VERSION, "product_name": PRODUCT,
            "product_version": __version__, "prometheus_plugin_version": RABBITMQ_VERSION,
            "erlang_version": f"n/a (Python {platform.python_version()})"})

    def _unacked(self) -> tuple[int, int, dict[Queue, int]]:
        """(open connections, open channels, unacked deliveries per queue)."""
        connections = channels = 0
        unacked: dict[Queue, int] = {}
        for client in self.server.clients:
            session = client.session
            if session is None:
                continue
            connections += 1
            channels += len(session.channels)
            for channel in session.channels.values():
                for record in channel.unacked.values():
                    unacked[record.queue] = unacked.get(record.queue, 0) + 1
        return connections, channels, unacked

    def _objects(self) -> Iterable[Metric]:
        connections, channels, unacked = self._unacked()
        labels = ["vhost", "queue"] if self.per_object else None
        families = [GaugeMetricFamily(name, documentation, labels=labels)
                    for name, documentation in QUEUE_GAUGES]
        queues = ready_total = unacked_total = consumers = 0
        for vhost in self.server.broker.vhosts.values():
            for queue in vhost.queues.values():
                ready, held = queue.message_count, unacked.get(queue, 0)
                count = queue.consumer_count
                queues += 1
                ready_total += ready
                unacked_total += held
                consumers += count
                if self.per_object:
                    for family, value in zip(families, (ready, held, ready + held, count),
                                             strict=True):
                        family.add_metric([vhost.name, queue.name], value)
        if not self.per_object:
            for family, total in zip(families, (ready_total, unacked_total,
                                                ready_total + unacked_total, consumers),
                                     strict=True):
                family.add_metric([], total)
        return [
            _gauge("rabbitmq_connections", "Connections currently open", connections),
            _gauge("rabbitmq_channels", "Channels currently open", channels),
            _gauge("rabbitmq_consumers", "Consumers currently connected", consumers),
            _gauge("rabbitmq_queues", "Queues available", queues),
            *families,
        ]

    def _resources(self) -> Iterator[Metric]:
        limits = self.server.resources
        alarms = self.server.broker.alarms
        yield _gauge("rabbitmq_process_resident_memory_bytes", "Memory used in bytes",
                     _resident())
        yield _gauge("amqpbroker_memory_used_bytes", "Memory the memory alarm counts: fixed "
                     "overhead, queued messages in memory, connection buffers",
                     self.server.memory.used())
        yield _gauge("rabbitmq_resident_memory_limit_bytes",
                     "Memory high watermark in bytes", limits.memory or 0)
        yield _gauge("rabbitmq_disk_space_available_bytes", "Disk space available in bytes",
                     free_disk(limits))
        yield _gauge("rabbitmq_disk_space_available_limit_bytes",
                     "Free disk space low watermark in bytes", limits.disk_free)
        yield _gauge("rabbitmq_process_open_fds", "Open file descriptors", open_fds())
        yield _gauge("rabbitmq_process_max_fds", "Open file descriptors limit",
                     fd_limit())
        yield _gauge("rabbitmq_erlang_uptime_seconds", "Node uptime", uptime())
        yield _gauge("rabbitmq_alarms_file_descriptor_limit",
                     "is 1 if file descriptor limit alarm is in effect", 0)
        yield _gauge("rabbitmq_alarms_free_disk_space_watermark",
                     "is 1 if free disk space watermark alarm is in effect",
                     int("disk" in alarms))
        yield _gauge("rabbitmq_alarms_memory_used_watermark",
                     "is 1 if VM memory watermark alarm is in effect", int("memory" in alarms))


def registry(server: Server, per_object: bool = False) -> CollectorRegistry:
    """A registry of its own (not the global one) holding the broker collector only."""
    own = CollectorRegistry(auto_describe=False)
    own.register(BrokerCollector(server, per_object))
    return own


async def _not_found(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 404,
                "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
    await send({"type": "http.response.body", "body": b"Not Found\n"})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def metrics_app(server: Server) -> ASGIApp:
    """The ASGI app of the Prometheus endpoint: `/metrics` and `/metrics/per-object`
    (text format, gzip when asked); any other path is 404."""
    routes: dict[str, ASGIApp] = {
        "/metrics": make_asgi_app(registry(server)),
        "/metrics/per-object": make_asgi_app(registry(server, per_object=True)),
    }

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path = scope.get("path", "")
        await routes.get(path.rstrip("/") or path, _not_found)(scope, receive, send)

    return app
