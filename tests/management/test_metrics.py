"""The Prometheus endpoint against a running broker: real AMQP clients make queues,
messages, consumers and unacked deliveries; the scrape reads them back in RabbitMQ's
names, label sets and types."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aio_pika
import httpx
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from amqpbroker import __version__
from amqpbroker.management.metrics import metrics_app
from amqpbroker.testing import EmbeddedBroker, running_broker

TIMEOUT = 5.0
QUEUE_GAUGES = ("rabbitmq_queue_messages_ready", "rabbitmq_queue_messages_unacked",
                "rabbitmq_queue_messages", "rabbitmq_queue_consumers")
GAUGES = (
    "rabbitmq_connections", "rabbitmq_channels", "rabbitmq_consumers", "rabbitmq_queues",
    *QUEUE_GAUGES,
    "rabbitmq_process_resident_memory_bytes", "rabbitmq_resident_memory_limit_bytes",
    "amqpbroker_memory_used_bytes",
    "rabbitmq_disk_space_available_bytes", "rabbitmq_disk_space_available_limit_bytes",
    "rabbitmq_process_open_fds", "rabbitmq_process_max_fds", "rabbitmq_erlang_uptime_seconds",
    "rabbitmq_alarms_memory_used_watermark", "rabbitmq_alarms_free_disk_space_watermark",
    "rabbitmq_alarms_file_descriptor_limit",
)


@dataclass
class Setup:
    broker: EmbeddedBroker
    client: httpx.AsyncClient
    connection: aio_pika.abc.AbstractConnection

    async def scrape(self, path: str = "/metrics") -> dict[str, Metric]:
        response = await self.client.get(path)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        return {family.name: family
                for family in text_string_to_metric_families(response.text)}


@asynccontextmanager
async def broker_and_scraper() -> AsyncIterator[Setup]:
    """A broker in this event loop (so scrapes read the model on its loop), one aio-pika
    connection to it, and an HTTP client on the metrics app."""
    async with running_broker() as broker:
        app = metrics_app(broker.server)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://metrics") as client:
            connection = await aio_pika.connect(broker.url, timeout=TIMEOUT)
            try:
                yield Setup(broker, client, connection)
            finally:
                await asyncio.wait_for(connection.close(), TIMEOUT)


def value(family: Metric, **labels: str) -> float:
    """The value of the one sample with exactly these labels."""
    found = [s.value for s in family.samples if s.labels == labels]
    assert len(found) == 1, (family.name, labels, family.samples)
    return found[0]


async def ignore(message: aio_pika.abc.AbstractIncomingMessage) -> None:
    """A consumer callback for a queue that stays empty."""


async def publish(channel: aio_pika.abc.AbstractChannel, queue: str, count: int) -> None:
    for n in range(count):  # the channel confirms: each publish returns once enqueued
        await channel.default_exchange.publish(aio_pika.Message(f"m{n}".encode()), queue)


async def test_identity_and_build_info_come_first() -> None:
    async with broker_and_scraper() as setup:
        response = await setup.client.get("/metrics")
        families = list(text_string_to_metric_families(response.text))
    assert [f.name for f in families[:2]] == ["rabbitmq_identity_info", "rabbitmq_build_info"]
    identity, build = families[0], families[1]
    assert identity.type == "gauge" and build.type == "gauge"
    [sample] = identity.samples
    assert set(sample.labels) == {"rabbitmq_node", "rabbitmq_cluster",
                                  "rabbitmq_cluster_permanent_id"}
    assert sample.labels["rabbitmq_node"].startswith("rabbit@")
    assert sample.value == 1
    [sample] = build.samples
    assert set(sample.labels) == {"rabbitmq_version", "product_name", "product_version",
                                  "prometheus_plugin_version", "erlang_version"}
    assert sample.labels["product_name"] == "amqpbroker"
    assert sample.labels["product_version"] == __version__
    assert sample.labels["rabbitmq_version"].startswith("3.13")


async def test_aggregated_gauges_count_objects_and_messages() -> None:
    async with broker_and_scraper() as setup:
        channel = await setup.connection.channel()
        await channel.declare_queue("idle", auto_delete=True)
        await publish(channel, "idle", 3)
        busy = await channel.declare_queue("busy", auto_delete=True)
        await publish(channel, "busy", 2)
        held = await busy.get(no_ack=False, timeout=TIMEOUT)  # one unacked, one ready
        assert held is not None
        consumer_channel = await setup.connection.channel()
        consumed = await consumer_channel.declare_queue("consumed", auto_delete=True)
        await consumed.consume(ignore)

        metrics = await setup.scrape()

        for name in GAUGES:
            assert metrics[name].type == "gauge", name
            assert [s.labels for s in metrics[name].samples] == [{}], name
        assert value(metrics["rabbitmq_connections"]) == 1
        assert value(metrics["rabbitmq_channels"]) == 2
        assert value(metrics["rabbitmq_consumers"]) == 1
        assert value(metrics["rabbitmq_queue_consumers"]) == 1
        assert value(metrics["rabbitmq_queues"]) == 3
        assert value(metrics["rabbitmq_queue_messages_ready"]) == 4
        assert value(metrics["rabbitmq_queue_messages_unacked"]) == 1
        assert value(metrics["rabbitmq_queue_messages"]) == 5
        assert value(metrics["rabbitmq_process_resident_memory_bytes"]) > 0
        assert value(metrics["rabbitmq_resident_memory_limit_bytes"]) == \
            setup.broker.server.resources.memory
        assert value(metrics["rabbitmq_disk_space_available_limit_bytes"]) == \
            setup.broker.server.resources.disk_free
        assert value(metrics["rabbitmq_disk_space_available_bytes"]) > 0
        assert 0 < value(metrics["rabbitmq_process_open_fds"]) <= \
            value(metrics["rabbitmq_process_max_fds"])
        assert value(metrics["rabbitmq_erlang_uptime_seconds"]) > 0
        assert value(metrics["rabbitmq_alarms_memory_used_watermark"]) == 0
        assert value(metrics["rabbitmq_alarms_free_disk_space_watermark"]) == 0

        await held.ack()
        await consumer_channel.close()
        metrics = await setup.scrape()
        assert value(metrics["rabbitmq_channels"]) == 1
        assert value(metrics["rabbitmq_consumers"]) == 0
        assert value(metrics["rabbitmq_queue_messages_unacked"]) == 0
        assert value(metrics["rabbitmq_queue_messages"]) == 4


async def test_per_object_labels_each_queue() -> None:
    async with broker_and_scraper() as setup:
        channel = await setup.connection.channel()
        await channel.declare_queue("q1", auto_delete=True)
        await publish(channel, "q1", 2)
        q2 = await channel.declare_queue("q2", auto_delete=True)
        await publish(channel, "q2", 3)
        held = await q2.get(no_ack=False, timeout=TIMEOUT)
        assert held is not None

        metrics = await setup.scrape("/metrics/per-object")

        assert "rabbitmq_identity_info" in metrics and "rabbitmq_build_info" in metrics
        for name in QUEUE_GAUGES:
            assert metrics[name].type == "gauge"
            assert sorted(s.labels["queue"] for s in metrics[name].samples) == ["q1", "q2"]
            assert all(set(s.labels) == {"vhost", "queue"} for s in metrics[name].samples)
        ready, unacked = metrics["rabbitmq_queue_messages_ready"], \
            metrics["rabbitmq_queue_messages_unacked"]
        assert value(ready, vhost="/", queue="q1") == 2
        assert value(ready, vhost="/", queue="q2") == 2
        assert value(unacked, vhost="/", queue="q1") == 0
        assert value(unacked, vhost="/", queue="q2") == 1
        assert value(metrics["rabbitmq_queue_messages"], vhost="/", queue="q2") == 3
        assert value(metrics["rabbitmq_queues"]) == 2
        assert value(metrics["rabbitmq_connections"]) == 1


async def test_alarms_show_as_one() -> None:
    async with broker_and_scraper() as setup:
        broker = setup.broker.server.broker
        broker.set_alarm("memory", True)
        metrics = await setup.scrape()
        assert value(metrics["rabbitmq_alarms_memory_used_watermark"]) == 1
        assert value(metrics["rabbitmq_alarms_free_disk_space_watermark"]) == 0
        broker.set_alarm("memory", False)
        broker.set_alarm("disk", True)
        metrics = await setup.scrape()
        assert value(metrics["rabbitmq_alarms_memory_used_watermark"]) == 0
        assert value(metrics["rabbitmq_alarms_free_disk_space_watermark"]) == 1
        broker.set_alarm("disk", False)


async def test_a_closed_connection_is_no_longer_counted() -> None:
    async with broker_and_scraper() as setup:
        other = await aio_pika.connect(setup.broker.url, timeout=TIMEOUT)
        await other.channel()
        metrics = await setup.scrape()
        assert value(metrics["rabbitmq_connections"]) == 2
        assert value(metrics["rabbitmq_channels"]) == 1
        await other.close()
        metrics = await setup.scrape()
        assert value(metrics["rabbitmq_connections"]) == 1
        assert value(metrics["rabbitmq_channels"]) == 0


async def test_gzip_and_unknown_paths() -> None:
    async with broker_and_scraper() as setup:
        response = await setup.client.get("/metrics", headers={"accept-encoding": "gzip"})
        assert response.headers["content-encoding"] == "gzip"
        assert "rabbitmq_queues" in response.text  # httpx decompresses
        response = await setup.client.get("/metrics/nope")
        assert response.status_code == 404
