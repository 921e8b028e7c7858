"""Message statistics through the management API and Prometheus: real clients publish,
consume, get and ack; the counts per queue, exchange, channel, connection, vhost and node
come back in RabbitMQ's fields, with rates, samples and churn. Sampling is driven by hand
(`Statistics.sample`) except in the test of the sampler the broker runs itself."""

from __future__ import annotations

import asyncio
from typing import Any

import aio_pika
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.management import GUEST, sampled_management
from support.processes import free_port

from amqpbroker.management.metrics import metrics_app
from amqpbroker.testing import EmbeddedBroker, running_broker

TIMEOUT = 5.0


async def get(api: httpx.AsyncClient, path: str) -> Any:
    response = await api.get(path)
    assert response.status_code == 200, response.text
    return response.json()


async def publish_consume_ack(broker: EmbeddedBroker, count: int) -> None:
    """`count` confirmed publishes to queue `jobs` (through `amq.direct`), all consumed
    with manual acks, then one basic.get that finds nothing."""
    async with await aio_pika.connect(broker.url, timeout=TIMEOUT) as connection:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue("jobs")
        await queue.bind("amq.direct", "jobs")
        exchange = await channel.get_exchange("amq.direct")
        for i in range(count):
            await exchange.publish(aio_pika.Message(str(i).encode()), routing_key="jobs")
        async with queue.iterator() as messages:
            seen = 0
            async for message in messages:
                await message.ack()
                seen += 1
                if seen == count:
                    break
        assert await queue.get(fail=False) is None


@pytest.mark.timeout(30)
async def test_counts_per_queue_exchange_vhost_and_node() -> None:
    async with sampled_management() as (broker, _, api):
        await publish_consume_ack(broker, 20)
        queue = (await get(api, "/api/queues/%2F/jobs"))["message_stats"]
        assert queue["publish"] == 20
        assert queue["deliver"] == 20
        assert queue["ack"] == 20
        assert queue["deliver_get"] == 20
        assert queue["get_empty"] == 1
        assert queue["publish_details"] == {"rate": 0.0}  # one sample: no rate yet
        exchange = (await get(api, "/api/exchanges/%2F/amq.direct"))["message_stats"]
        assert (exchange["publish_in"], exchange["publish_out"]) == (20, 20)
        for path in ("/api/overview", "/api/vhosts/%2F"):
            stats = (await get(api, path))["message_stats"]
            assert stats["publish"] == 20, path
            assert stats["confirm"] == 20, path
            assert stats["deliver"] == 20, path
            assert stats["ack"] == 20, path
            assert stats["get_empty"] == 1, path
        churn = (await get(api, "/api/overview"))["churn_rates"]
        assert churn["connection_created"] == churn["connection_closed"] >= 1
        assert churn["queue_created"] == 1
        assert churn["queue_declared"] >= 1


@pytest.mark.timeout(30)
async def test_open_channel_and_connection_stats() -> None:
    async with sampled_management() as (broker, _, api):
        connection = await aio_pika.connect(broker.url, timeout=TIMEOUT)
        async with connection:
            channel = await connection.channel()
            await channel.declare_queue("q")
            for _ in range(5):
                await channel.default_exchange.publish(aio_pika.Message(b"x"), "q")
            await channel.default_exchange.publish(aio_pika.Message(b"x"), "nowhere",
                                                   mandatory=False)
            await channel.default_exchange.publish(aio_pika.Message(b"x"), "nowhere")
            queue = await channel.get_queue("q")
            got = await queue.get(no_ack=True)
            assert got.body == b"x"
            channels = await get(api, "/api/channels")
            assert len(channels) == 1
            stats = channels[0]["message_stats"]
            assert stats["publish"] == 7
            assert stats["drop_unroutable"] == 1
            assert stats["return_unroutable"] == 1
            assert stats["get_no_ack"] == 1
            [conn] = await get(api, "/api/connections")
            assert conn["recv_oct"] > 0 and conn["send_oct"] > 0
            assert "rate" in conn["recv_oct_details"]
            default = next(x for x in await get(api, "/api/exchanges/%2F") if x["name"] == "")
            assert default["message_stats"]["publish_in"] == 7
            assert default["message_stats"]["publish_out"] == 5


@pytest.mark.timeout(30)
async def test_rates_and_samples_between_two_samples() -> None:
    async with (sampled_management() as (broker, statistics, api),
                await aio_pika.connect(broker.url, timeout=TIMEOUT) as connection):
        channel = await connection.channel(publisher_confirms=True)
        await channel.declare_queue("q")
        statistics.sample()
        for _ in range(50):
            await channel.default_exchange.publish(aio_pika.Message(b"x"), "q")
        statistics.sample()
        queue = await get(api, "/api/queues/%2F/q?msg_rates_age=60&msg_rates_incr=5"
                               "&lengths_age=60&lengths_incr=5")
        publish = queue["message_stats"]["publish_details"]
        assert publish["rate"] > 0
        assert [s["sample"] for s in publish["samples"]] == [50, 0]
        assert publish["avg_rate"] > 0
        assert publish["avg"] == 25.0
        messages = queue["messages_details"]
        assert [s["sample"] for s in messages["samples"]] == [50, 0]
        assert queue["messages"] == 50
        overview = await get(api, "/api/overview")
        assert overview["message_stats"]["publish_details"]["rate"] > 0
        assert overview["queue_totals"]["messages"] == 50
        assert "samples" not in overview["message_stats"]["publish_details"]


@pytest.mark.timeout(30)
async def test_disable_stats_leaves_message_stats_out() -> None:
    async with sampled_management() as (broker, _, api):
        await publish_consume_ack(broker, 3)
        queue = await get(api, "/api/queues/%2F/jobs?disable_stats=true")
        assert queue["message_stats"] == {}


@pytest.mark.timeout(30)
async def test_history_forgets_deleted_objects() -> None:
    async with sampled_management() as (broker, statistics, _):
        async with await aio_pika.connect(broker.url, timeout=TIMEOUT) as connection:
            channel = await connection.channel()
            queue = await channel.declare_queue("gone")
            statistics.sample()
            assert any(getattr(key, "name", None) == "gone" for key in statistics.history)
            await queue.delete()
        statistics.sample()
        assert not any(getattr(key, "name", None) == "gone" for key in statistics.history)


@pytest.mark.timeout(30)
async def test_prometheus_global_counters() -> None:
    async with running_broker() as broker:
        await publish_consume_ack(broker, 10)
        transport = httpx.ASGITransport(app=metrics_app(broker.server))
        async with httpx.AsyncClient(transport=transport, base_url="http://metrics") as client:
            text = (await client.get("/metrics")).text
        samples = {s.name: s.value for family in text_string_to_metric_families(text)
                   for s in family.samples}
        assert samples["rabbitmq_global_messages_received_total"] == 10
        assert samples["rabbitmq_global_messages_confirmed_total"] == 10
        assert samples["rabbitmq_global_messages_routed_total"] == 10
        assert samples["rabbitmq_global_messages_delivered_consume_manual_ack_total"] == 10
        assert samples["rabbitmq_global_messages_acknowledged_total"] == 10
        assert samples["rabbitmq_global_messages_get_empty_total"] == 1
        assert samples["rabbitmq_channel_messages_published_total"] == 10
        assert samples["rabbitmq_queues_created_total"] == 1
        assert samples["rabbitmq_connections_opened_total"] >= 1
        memory = broker.server.memory
        assert memory.fixed <= samples["amqpbroker_memory_used_bytes"] <= memory.used()
        types = {family.name: family.type for family in text_string_to_metric_families(text)}
        assert types["rabbitmq_global_messages_received"] == "counter"


@pytest.mark.timeout(30)
async def test_the_broker_samples_on_its_own() -> None:
    """With the management port on, the broker's own sampler makes rates appear while a
    publisher runs."""
    port = free_port()
    async with (running_broker(management_port=port,
                               collect_statistics_interval=100) as broker,
                await aio_pika.connect(broker.url, timeout=TIMEOUT) as connection):
        channel = await connection.channel(publisher_confirms=True)
        await channel.declare_queue("q")
        stop = asyncio.Event()

        async def publisher() -> None:
            while not stop.is_set():
                await channel.default_exchange.publish(aio_pika.Message(b"x"), "q")

        task = asyncio.create_task(publisher())
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}",
                                         auth=GUEST) as api:
                deadline = asyncio.get_running_loop().time() + 10
                while True:
                    stats = (await get(api, "/api/queues/%2F/q"))["message_stats"]
                    if stats.get("publish_details", {}).get("rate", 0) > 0:
                        break
                    assert asyncio.get_running_loop().time() < deadline, stats
                    await asyncio.sleep(0.05)
        finally:
            stop.set()
            await task


@pytest.mark.timeout(30)
async def test_node_counters_keep_what_a_deleted_vhost_counted() -> None:
    """The node's totals (and Prometheus's global counters) never go down: deleting a
    vhost keeps what was counted in it."""
    async with sampled_management() as (broker, _, api):
        assert (await api.put("/api/vhosts/gone")).status_code == 201
        assert (await api.put("/api/permissions/gone/guest", json={
            "configure": ".*", "write": ".*", "read": ".*"})).status_code == 201
        async with await aio_pika.connect(broker.url + "gone", timeout=TIMEOUT) as connection:
            channel = await connection.channel()
            await channel.declare_queue("q")
            for _ in range(3):
                await channel.default_exchange.publish(aio_pika.Message(b"x"), "q")
        assert (await get(api, "/api/overview"))["message_stats"]["publish"] == 3
        assert (await api.delete("/api/vhosts/gone")).status_code == 204
        assert (await get(api, "/api/overview"))["message_stats"]["publish"] == 3
