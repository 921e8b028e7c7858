"""The rest of RabbitMQ's management API paths with httpx against an embedded broker:
nodes, bindings by path (POST with its Location header, GET and DELETE by
`properties_key`), per-vhost definitions, the per-vhost, per-user and per-connection
lists, topic permissions, parameters, limits, `disable_stats`, and bad input answered
in RabbitMQ's error shape without changing anything."""

from __future__ import annotations

import aio_pika
from support.management import management

NODE_FIELDS = ("name", "type", "running", "uptime", "mem_used", "mem_limit", "mem_alarm",
               "disk_free", "disk_free_limit", "disk_free_alarm", "fd_used", "fd_total",
               "sockets_used", "sockets_total", "proc_used", "proc_total", "processors",
               "partitions", "exchange_types", "auth_mechanisms", "applications", "contexts",
               "enabled_plugins", "log_files", "config_files")


async def test_nodes() -> None:
    async with management() as (broker, api):
        overview = (await api.get("/api/overview")).json()
        (node,) = (await api.get("/api/nodes")).json()
        assert set(NODE_FIELDS) <= set(node)
        assert node["name"] == overview["node"]
        assert node["running"] is True
        assert node["mem_alarm"] is False and node["disk_free_alarm"] is False
        assert node["fd_used"] > 0 and node["fd_total"] >= node["fd_used"]
        assert node["disk_free"] > 0 and node["mem_used"] > 0
        connection = await aio_pika.connect(broker.url)
        async with connection:
            one = await api.get(f"/api/nodes/{node['name']}")
            assert one.json()["sockets_used"] == 1
        broker.server.broker.set_alarm("memory", True)
        assert (await api.get(f"/api/nodes/{node['name']}")).json()["mem_alarm"] is True
        broker.server.broker.set_alarm("memory", False)
        assert (await api.get("/api/nodes/rabbit@elsewhere")).status_code == 404


async def test_nodes_mem_used_is_the_alarms_figure() -> None:
    async with management() as (broker, api):
        memory = broker.server.memory
        before = (await api.get("/api/nodes")).json()[0]["mem_used"]
        assert memory.fixed <= before <= memory.used()
        await api.put("/api/queues/%2F/big", json={"durable": False})
        await api.post("/api/exchanges/%2F/amq.default/publish", json={
            "routing_key": "big", "payload": "x" * 1_000_000})
        after = (await api.get("/api/nodes")).json()[0]["mem_used"]
        assert after >= before + 1_000_000


async def test_nodes_need_a_monitor() -> None:
    async with management() as (_, api):
        await api.put("/api/users/watcher", json={"password": "pw", "tags": "management"})
        refused = await api.get("/api/nodes", auth=("watcher", "pw"))
        assert refused.status_code == 401
        assert refused.json() == {"error": "not_authorized", "reason": "Not monitor user"}
        await api.put("/api/users/watcher", json={"tags": "monitoring"})
        assert (await api.get("/api/nodes", auth=("watcher", "pw"))).status_code == 200
