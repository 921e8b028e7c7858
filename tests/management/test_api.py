"""The management HTTP API with httpx against an embedded broker, in the broker's own event
loop: auth and its error shapes, the objects tools use (rabbitmqadmin's flow: list with
columns, declare, list, delete; definitions export and import), pagination, runtime
users and permissions, policies, connections closed from the API, health checks."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import aio_pika
import pytest
from support.management import management, until


async def test_no_credentials_is_401_with_rabbitmqs_header() -> None:
    async with management() as (_, api):
        response = await api.get("/api/overview", auth=None)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Basic realm="RabbitMQ Management"'


async def test_bad_credentials() -> None:
    async with management() as (_, api):
        response = await api.get("/api/overview", auth=("guest", "wrong"))
        assert response.status_code == 401
        assert response.json() == {"error": "not_authorized", "reason": "Login failed"}


async def test_whoami_and_overview() -> None:
    async with management() as (broker, api):
        assert (await api.get("/api/whoami")).json() == {"name": "guest",
                                                         "tags": ["administrator"]}
        overview = (await api.get("/api/overview")).json()
        assert overview["product_name"] == "amqpbroker"
        assert overview["listeners"][0]["port"] == broker.port
        assert overview["object_totals"]["queues"] == 0


async def test_unknown_path_and_wrong_method() -> None:
    async with management() as (_, api):
        response = await api.get("/api/nothing-here")
        assert response.status_code == 404
        assert response.json() == {"error": "Object Not Found", "reason": "Not Found"}
        assert (await api.post("/api/overview")).status_code == 405


async def test_rabbitmqadmin_flow() -> None:
    async with management() as (broker, api):
        assert (await api.put("/api/queues/%2F/jobs", json={"durable": True})).status_code == 201
        assert (await api.put("/api/queues/%2F/jobs", json={"durable": True})).status_code == 204
        inequivalent = await api.put("/api/queues/%2F/jobs", json={"durable": False})
        assert inequivalent.status_code == 400
        assert "inequivalent arg 'durable'" in inequivalent.json()["reason"]
        assert (await api.put("/api/exchanges/%2F/events",
                              json={"type": "topic"})).status_code == 201
        exchanges = {x["name"]: x for x in (await api.get("/api/exchanges/%2F")).json()}
        assert exchanges["events"]["type"] == "topic"
        assert exchanges[""]["type"] == "direct"  # the default exchange is listed
        assert (await api.get("/api/exchanges/%2F/events")).json()["vhost"] == "/"
        connection = await aio_pika.connect(broker.url)
        async with connection:
            channel = await connection.channel()
            for _ in range(3):
                await channel.default_exchange.publish(aio_pika.Message(b"x"), "jobs")
            await channel.get_queue("jobs", ensure=True)
            listed = (await api.get("/api/queues", params={"columns": "name,messages"})).json()
            assert listed == [{"name": "jobs", "messages": 3}]
            connections = (await api.get("/api/connections")).json()
            assert [c["user"] for c in connections] == ["guest"]
            assert (await api.get("/api/channels")).json()[0]["number"] == 1
        bindings = (await api.get("/api/bindings/%2F")).json()
        assert {"source": "", "destination": "jobs", "destination_type": "queue",
                "routing_key": "jobs"}.items() <= bindings[0].items()
        assert (await api.delete("/api/queues/%2F/jobs/contents")).status_code == 204
        assert (await api.get("/api/queues/%2F/jobs")).json()["messages"] == 0
        exported = (await api.get("/api/definitions")).json()
        assert [q["name"] for q in exported["queues"]] == ["jobs"]
        assert (await api.delete("/api/queues/%2F/jobs")).status_code == 204
        assert (await api.get("/api/queues/%2F/jobs")).status_code == 404
        assert (await api.post("/api/definitions", json=exported)).status_code == 204
        assert (await api.get("/api/queues/%2F/jobs")).status_code == 200


async def test_pagination() -> None:
    async with management() as (_, api):
        for name in ("a1", "a2", "b1"):
            await api.put(f"/api/queues/%2F/{name}", json={})
        page = (await api.get("/api/queues", params={"page": 1, "page_size": 2,
                                                     "name": "a"})).json()
        assert {k: v for k, v in page.items() if k != "items"} == {
            "filtered_count": 2, "item_count": 2, "page": 1, "page_count": 1,
            "page_size": 2, "total_count": 3}
        regex = await api.get("/api/queues", params={"name": "^b", "use_regex": "true"})
        assert [q["name"] for q in regex.json()] == ["b1"]
        out_of_range = await api.get("/api/queues", params={"page": 5, "page_size": 1})
        assert out_of_range.json()["reason"] == "Page out of range, page: 5 page size: 1, len: 3"
        assert (await api.get("/api/queues", params={"page": 0})).status_code == 400


async def test_users_and_permissions_at_runtime() -> None:
    async with management() as (broker, api):
        assert (await api.put("/api/users/app", json={"password": "pw",
                                                      "tags": "management"})).status_code == 201
        assert (await api.put("/api/users/app", json={"password": "pw"})).json() == {
            "error": "bad_request", "reason": "tags_not_present"}
        assert (await api.put("/api/permissions/%2F/app", json={
            "configure": ".*", "write": ".*", "read": ".*"})).status_code == 201
        url = f"amqp://app:pw@{broker.host}:{broker.port}/"
        connection = await aio_pika.connect(url)
        closed: list[Any] = []
        connection.close_callbacks.add(lambda _conn, exc: closed.append(exc))
        app_api = await api.get("/api/users", auth=("app", "pw"))
        assert app_api.json() == {"error": "not_authorized", "reason": "Not administrator user"}
        assert (await api.get("/api/queues", auth=("app", "pw"))).status_code == 200
        assert (await api.delete("/api/users/app")).status_code == 204
        await until(lambda: closed, "the deleted user's connection to close")
        assert "user 'app' is deleted" in str(closed[0])
        assert (await api.get("/api/permissions/%2F/app")).status_code == 404


async def test_deleting_the_last_administrator_is_refused() -> None:
    async with management() as (_, api):
        response = await api.delete("/api/users/guest")
        assert response.status_code == 400
        assert (await api.get("/api/users/guest")).status_code == 200


async def test_policies() -> None:
    async with management() as (_, api):
        await api.put("/api/queues/%2F/q.limited", json={})
        put = await api.put("/api/policies/%2F/limit", json={
            "pattern": "^q\\.", "apply-to": "queues", "definition": {"max-length": 1}})
        assert put.status_code == 201
        queue = (await api.get("/api/queues/%2F/q.limited")).json()
        assert queue["policy"] == "limit"
        assert queue["effective_policy_definition"] == {"max-length": 1}
        bad = await api.put("/api/policies/%2F/bad", json={
            "pattern": ".*", "definition": {"message-ttl": "x"}})
        assert bad.status_code == 400
        assert '<<"x">> is not a valid message TTL' in bad.json()["reason"]
        assert (await api.delete("/api/policies/%2F/limit")).status_code == 204
        assert (await api.get("/api/queues/%2F/q.limited")).json()["policy"] is None


async def test_connection_closed_with_x_reason() -> None:
    async with management() as (broker, api):
        connection = await aio_pika.connect(broker.url)
        (info,) = (await api.get("/api/connections")).json()
        name = info["name"]
        quoted = name.replace(" ", "%20").replace(">", "%3E")
        response = await api.delete(f"/api/connections/{quoted}", headers={"X-Reason": "bye"})
        assert response.status_code == 204
        with pytest.raises(aio_pika.exceptions.ConnectionClosed) as closed:
            await (await connection.channel()).declare_queue(exclusive=True)
        assert "CONNECTION_FORCED - bye" in str(closed.value)


async def test_health_checks() -> None:
    async with management() as (broker, api):
        assert (await api.get("/api/health/checks/alarms")).json() == {"status": "ok"}
        listener = await api.get(f"/api/health/checks/port-listener/{broker.port}")
        assert listener.json() == {"status": "ok", "port": broker.port}
        assert (await api.get("/api/health/checks/port-listener/1")).status_code == 503
        assert (await api.get("/api/health/checks/protocol-listener/amqp091")).json() == {
            "status": "ok", "protocol": "amqp"}
        assert (await api.get("/api/aliveness-test/%2F")).json() == {"status": "ok"}
        broker.server.broker.set_alarm("memory", True)
        assert (await api.get("/api/health/checks/alarms")).status_code == 503
        broker.server.broker.set_alarm("memory", False)


async def test_bad_input_changes_nothing() -> None:
    async with management() as (_, api):
        malformed = await api.put("/api/queues/%2F/q", content=b"{not json",
                                  headers={"content-type": "application/json"})
        assert malformed.status_code == 400
        assert (await api.get("/api/queues/%2F/q")).status_code == 404
        huge = await api.put("/api/queues/%2F/q", content=b" " * (11 * 1024 * 1024))
        assert huge.status_code == 413
        assert (await api.get("/api/queues/%2Fnope")).status_code == 404
        basic = "Basic " + base64.b64encode(b"\xff\xfe").decode()
        assert (await api.get("/api/overview", headers={"authorization": basic},
                              auth=None)).status_code == 401


async def test_publish_and_get_with_ackmodes() -> None:
    async with management() as (_, api):
        await api.put("/api/queues/%2F/inbox", json={"durable": False})
        published = await api.post("/api/exchanges/%2F/amq.default/publish", json={
            "routing_key": "inbox", "payload": "hello", "payload_encoding": "string",
            "properties": {"delivery_mode": 2, "headers": {"k": "v"}, "type": "note"}})
        assert published.json() == {"routed": True}
        unrouted = await api.post("/api/exchanges/%2F/amq.direct/publish", json={
            "routing_key": "nowhere", "payload": "x", "payload_encoding": "string",
            "properties": {}})
        assert unrouted.json() == {"routed": False}
        no_encoding = await api.post("/api/exchanges/%2F/amq.direct/publish", json={
            "routing_key": "nowhere", "payload": "x", "properties": {}})
        assert no_encoding.json() == {"error": "bad_request",
                                      "reason": "[{key_missing,payload_encoding}]"}
        missing = await api.post("/api/exchanges/%2F/nope/publish", json={"payload": "x"})
        assert missing.json()["reason"] == "404 NOT_FOUND - no exchange 'nope' in vhost '/'"
        peek = (await api.post("/api/queues/%2F/inbox/get", json={
            "count": 5, "ackmode": "ack_requeue_true", "encoding": "auto"})).json()
        assert len(peek) == 1
        assert {k: peek[0][k] for k in ("payload", "payload_encoding", "payload_bytes",
                                        "routing_key", "message_count", "redelivered")} == {
            "payload": "hello", "payload_encoding": "string", "payload_bytes": 5,
            "routing_key": "inbox", "message_count": 0, "redelivered": False}
        assert peek[0]["properties"] == {"delivery_mode": 2, "headers": {"k": "v"},
                                         "type": "note"}
        again = (await api.post("/api/queues/%2F/inbox/get", json={
            "count": 1, "ackmode": "ack_requeue_false", "encoding": "base64"})).json()
        assert again[0]["payload_encoding"] == "base64"
        assert again[0]["redelivered"] is True
        assert (await api.post("/api/queues/%2F/inbox/get", json={
            "count": "1", "ackmode": "ack_requeue_false", "encoding": "auto"})).json() == []
        assert (await api.post("/api/queues/%2F/inbox/get", json={"count": 1})).json() == {
            "error": "bad_request", "reason": "[{key_missing,ackmode},{key_missing,encoding}]"}
        assert (await api.post("/api/queues/%2F/inbox/get", json={
            "count": 1, "ackmode": "bogus", "encoding": "auto"})).status_code == 500


async def test_a_large_definitions_import_lets_the_loop_run() -> None:
    """An import of many queues runs in bounded steps: another task keeps running
    while it goes on."""
    async with management() as (broker, api):
        queues = [{"name": f"q{i}", "vhost": "/", "durable": False, "auto_delete": False,
                   "arguments": {}} for i in range(2000)]
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        start = ticks
        response = await api.post("/api/definitions", json={"queues": queues})
        task.cancel()
        assert response.status_code == 204, response.text
        assert len(broker.server.broker.vhosts["/"].queues) == 2000
        assert ticks - start >= 5  # one at least every few hundred queues


async def test_a_vhost_deleted_during_an_import_is_a_clear_error() -> None:
    """The import yields between steps; a vhost deleted meanwhile fails the import with
    a 400 naming it (never a 500), and the broker goes on."""
    async with management() as (broker, api):
        assert (await api.put("/api/vhosts/imp")).status_code == 201
        queues = [{"name": f"q{i}", "vhost": "imp", "durable": False, "auto_delete": False,
                   "arguments": {}} for i in range(1000)]

        async def delete_when_importing() -> int:
            while "q0" not in broker.server.broker.vhosts["imp"].queues:
                await asyncio.sleep(0)
            return (await api.delete("/api/vhosts/imp")).status_code

        deleting = asyncio.create_task(delete_when_importing())
        response = await api.post("/api/definitions", json={"queues": queues})
        assert await deleting == 204
        assert response.status_code == 400, response.text
        assert "vhost 'imp' was deleted during the import" in response.json()["reason"]
        assert (await api.get("/api/overview")).status_code == 200
