"""The rest of RabbitMQ's management API paths with httpx against an embedded broker:
nodes, bindings by path (POST with its Location header, GET and DELETE by
`properties_key`), per-vhost definitions, the per-vhost, per-user and per-connection
lists, topic permissions, parameters, limits, `disable_stats`, and bad input answered
in RabbitMQ's error shape without changing anything."""

from __future__ import annotations

import urllib.parse

import aio_pika
from support.management import management, until

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
            "routing_key": "big", "payload": "x" * 1_000_000, "payload_encoding": "string",
            "properties": {}})
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


async def test_binding_post_location_get_and_delete() -> None:
    async with management() as (_, api):
        await api.put("/api/exchanges/%2F/events", json={"type": "topic"})
        await api.put("/api/queues/%2F/q", json={})
        created = await api.post("/api/bindings/%2F/e/events/q/q",
                                 json={"routing_key": "a.*.c", "arguments": {}})
        assert created.status_code == 201
        assert created.headers["location"] == "q/a.%252A.c"
        with_args = await api.post("/api/bindings/%2F/e/events/q/q",
                                   json={"routing_key": "k", "arguments": {"x-foo": "bar"}})
        key = with_args.headers["location"].removeprefix("q/")
        assert key.startswith("k~")
        listed = (await api.get("/api/bindings/%2F/e/events/q/q")).json()
        assert [b["properties_key"] for b in listed] == ["a.%2A.c", key]
        assert {"source": "events", "vhost": "/", "destination": "q",
                "destination_type": "queue", "routing_key": "a.*.c",
                "arguments": {}}.items() <= listed[0].items()
        one = await api.get("/api/bindings/%2F/e/events/q/q/a.%252A.c")
        assert one.json() == listed[0]
        assert (await api.get(f"/api/bindings/%2F/e/events/q/q/{key}")).json() == listed[1]
        assert (await api.delete("/api/bindings/%2F/e/events/q/q/a.%252A.c")).status_code == 204
        assert (await api.get("/api/bindings/%2F/e/events/q/q/a.%252A.c")).status_code == 404
        assert (await api.delete("/api/bindings/%2F/e/events/q/q/a.%252A.c")).status_code == 404
        assert [b["routing_key"] for b in
                (await api.get("/api/bindings/%2F/e/events/q/q")).json()] == ["k"]


async def test_binding_with_empty_key_is_tilde() -> None:
    async with management() as (_, api):
        await api.put("/api/exchanges/%2F/fan", json={"type": "fanout"})
        await api.put("/api/queues/%2F/q", json={})
        created = await api.post("/api/bindings/%2F/e/fan/q/q", content=b"")
        assert created.headers["location"] == "q/~"
        assert (await api.get("/api/bindings/%2F/e/fan/q/q/~")).json()["routing_key"] == ""


async def test_exchange_to_exchange_bindings() -> None:
    async with management() as (_, api):
        await api.put("/api/exchanges/%2F/up", json={"type": "fanout"})
        await api.put("/api/exchanges/%2F/down", json={"type": "direct"})
        created = await api.post("/api/bindings/%2F/e/up/e/down", json={"routing_key": "r"})
        assert (created.status_code, created.headers["location"]) == (201, "down/r")
        (binding,) = (await api.get("/api/bindings/%2F/e/up/e/down")).json()
        assert binding["destination_type"] == "exchange"
        sources = (await api.get("/api/exchanges/%2F/up/bindings/source")).json()
        destinations = (await api.get("/api/exchanges/%2F/down/bindings/destination")).json()
        assert sources == destinations == [binding]
        assert (await api.get("/api/exchanges/%2F/down/bindings/source")).json() == []
        assert (await api.delete("/api/bindings/%2F/e/up/e/down/r")).status_code == 204
        assert (await api.get("/api/bindings/%2F/e/up/e/down")).json() == []


async def test_queue_bindings_include_the_default_exchange() -> None:
    async with management() as (_, api):
        await api.put("/api/queues/%2F/q", json={})
        await api.post("/api/bindings/%2F/e/amq.topic/q/q", json={"routing_key": "#"})
        listed = (await api.get("/api/queues/%2F/q/bindings")).json()
        assert [(b["source"], b["routing_key"]) for b in listed] == [("", "q"),
                                                                     ("amq.topic", "#")]
        default = await api.get("/api/bindings/%2F/e/amq.default/q/q/q")
        assert default.json()["source"] == ""
        assert (await api.get("/api/queues/%2F/nope/bindings")).status_code == 404
        assert (await api.get("/api/exchanges/%2F/nope/bindings/source")).status_code == 404


async def test_binding_errors() -> None:
    async with management() as (_, api):
        await api.put("/api/queues/%2F/q", json={})
        missing = await api.post("/api/bindings/%2F/e/nope/q/q", json={})
        assert missing.status_code == 404
        assert missing.json() == {"error": "not_found",
                                  "reason": "no exchange 'nope' in vhost '/'"}
        no_queue = await api.post("/api/bindings/%2F/e/amq.direct/q/nope", json={})
        assert no_queue.json()["reason"] == "no queue 'nope' in vhost '/'"
        assert (await api.get("/api/bindings/%2F/e/nope/q/q")).status_code == 404
        assert (await api.get("/api/bindings/%2F/e/amq.direct/x/q")).status_code == 404
        wrong = await api.post("/api/bindings/%2F/e/amq.direct/q/q", json={"routing_key": 1})
        assert wrong.status_code == 400
        assert (await api.post("/api/bindings/%2F/e/amq.direct/q/q",
                               json={"arguments": []})).status_code == 400
        assert (await api.get("/api/bindings/%2F/e/amq.direct/q/q")).json() == []


async def test_per_vhost_definitions_round_trip() -> None:
    async with management() as (_, api):
        assert (await api.put("/api/vhosts/a%2Fb", json={})).status_code == 201
        await api.put("/api/exchanges/a%2Fb/events", json={"type": "topic"})
        await api.put("/api/queues/a%2Fb/jobs", json={"durable": True})
        await api.post("/api/bindings/a%2Fb/e/events/q/jobs", json={"routing_key": "j.#"})
        await api.put("/api/policies/a%2Fb/ttl", json={"pattern": "^jobs$",
                                                       "definition": {"message-ttl": 1000}})
        await api.put("/api/queues/%2F/elsewhere", json={})
        exported = (await api.get("/api/definitions/a%2Fb")).json()
        assert set(exported) == {"rabbit_version", "parameters", "policies", "queues",
                                 "exchanges", "bindings"}
        assert exported["queues"] == [{"name": "jobs", "durable": True, "auto_delete": False,
                                       "arguments": {}}]
        assert [x["name"] for x in exported["exchanges"]] == ["events"]
        assert [(b["source"], b["destination"], b["routing_key"])
                for b in exported["bindings"]] == [("events", "jobs", "j.#")]
        assert [p["name"] for p in exported["policies"]] == ["ttl"]
        assert all("vhost" not in entry for section in ("queues", "exchanges", "bindings",
                                                          "policies")
                   for entry in exported[section])
        await api.put("/api/vhosts/copy", json={})
        imported = await api.post("/api/definitions/copy",
                                  json={**exported, "users": [{"name": "ignored"}]})
        assert imported.status_code == 204
        assert (await api.get("/api/definitions/copy")).json() == exported
        assert (await api.get("/api/queues/copy/jobs")).json()["policy"] == "ttl"
        assert (await api.get("/api/users/ignored")).status_code == 404
        assert [q["name"] for q in (await api.get("/api/queues/%2F")).json()] == ["elsewhere"]
        assert (await api.delete("/api/vhosts/a%2Fb")).status_code == 204
        await api.put("/api/vhosts/a%2Fb", json={})
        assert (await api.post("/api/definitions/a%2Fb", json=exported)).status_code == 204
        assert (await api.get("/api/definitions/a%2Fb")).json() == exported


async def test_per_vhost_definitions_errors() -> None:
    async with management() as (_, api):
        missing = await api.get("/api/definitions/nope")
        assert (missing.status_code, missing.json()) == (
            400, {"error": "bad_request", "reason": "vhost_not_found"})
        assert (await api.post("/api/definitions/nope", json={})).status_code == 400
        not_object = await api.post("/api/definitions/%2F", json=["queues"])
        assert not_object.json()["reason"] == "failed_to_parse_json"
        assert (await api.post("/api/definitions", json="x")).json()["reason"] == (
            "failed_to_parse_json")
        bad = await api.post("/api/definitions/%2F", json={"queues": [
            {"name": "ok"}, {"name": "bad", "durable": "maybe"}]})
        assert bad.status_code == 400
        assert "queues[1]" in bad.json()["reason"]
        assert (await api.get("/api/queues/%2F/ok")).status_code == 404
        await api.put("/api/users/app", json={"password": "pw", "tags": "management"})
        assert (await api.get("/api/definitions/%2F",
                              auth=("app", "pw"))).json()["reason"] == "Not administrator user"


def quoted(name: str) -> str:
    return urllib.parse.quote(name, safe="")


async def test_connections_and_channels_by_vhost_and_connection() -> None:
    async with management() as (broker, api):
        await api.put("/api/vhosts/other", json={})
        connection = await aio_pika.connect(broker.url)
        async with connection:
            await connection.channel()
            await connection.channel()
            (info,) = (await api.get("/api/vhosts/%2F/connections")).json()
            assert (await api.get("/api/vhosts/other/connections")).json() == []
            assert (await api.get("/api/vhosts/nope/connections")).status_code == 404
            channels = (await api.get("/api/vhosts/%2F/channels")).json()
            assert [c["number"] for c in channels] == [1, 2]
            assert (await api.get("/api/vhosts/other/channels")).json() == []
            by_connection = await api.get(f"/api/connections/{quoted(info['name'])}/channels")
            assert by_connection.json() == channels
            one = await api.get(f"/api/channels/{quoted(channels[1]['name'])}")
            assert one.json() == channels[1]
            assert one.json()["connection_details"]["name"] == info["name"]
            assert (await api.get("/api/channels/nope%20(1)")).status_code == 404
            assert (await api.get("/api/connections/nope/channels")).status_code == 404


async def test_permissions_by_user_and_topic_permissions() -> None:
    async with management() as (_, api):
        await api.put("/api/users/app", json={"password": "pw", "tags": ""})
        await api.put("/api/vhosts/v", json={})
        await api.put("/api/permissions/v/app", json={"configure": "", "write": ".*",
                                                      "read": ".*"})
        listed = (await api.get("/api/users/app/permissions")).json()
        assert listed == [{"user": "app", "vhost": "v", "configure": "", "write": ".*",
                           "read": ".*"}]
        assert (await api.get("/api/users/nope/permissions")).status_code == 404
        put = await api.put("/api/topic-permissions/v/app", json={
            "exchange": "amq.topic", "write": "^a\\.", "read": ".*"})
        assert put.status_code == 201
        again = await api.put("/api/topic-permissions/v/app", json={
            "exchange": "amq.topic", "write": "^b\\.", "read": ".*"})
        assert again.status_code == 204
        expected = [{"user": "app", "vhost": "v", "exchange": "amq.topic", "write": "^b\\.",
                     "read": ".*"}]
        assert (await api.get("/api/topic-permissions/v/app")).json() == expected
        assert (await api.get("/api/users/app/topic-permissions")).json() == expected
        assert (await api.get("/api/vhosts/v/topic-permissions")).json() == expected
        assert (await api.get("/api/vhosts/%2F/topic-permissions")).json() == []
        assert (await api.get("/api/topic-permissions")).json() == expected
        missing_key = await api.put("/api/topic-permissions/v/app", json={"write": ".*"})
        assert missing_key.json() == {"error": "bad_request",
                                      "reason": "[{key_missing,exchange}]"}
        bad_regex = await api.put("/api/topic-permissions/v/app",
                                  json={"exchange": "x", "write": "("})
        assert bad_regex.status_code == 400
        unknown = await api.put("/api/topic-permissions/v/nobody", json={"exchange": "x"})
        assert unknown.json()["reason"] == "vhost_or_user_not_found"
        assert (await api.get("/api/topic-permissions/v/app")).json() == expected
        assert (await api.delete("/api/topic-permissions/v/app")).status_code == 204
        assert (await api.get("/api/topic-permissions/v/app")).status_code == 404
        assert (await api.delete("/api/topic-permissions/v/app")).status_code == 404


async def test_unknown_user_or_vhost_in_permissions() -> None:
    async with management() as (_, api):
        body = {"configure": ".*", "write": ".*", "read": ".*"}
        unknown = await api.put("/api/permissions/%2F/nobody", json=body)
        assert (unknown.status_code, unknown.json()) == (
            400, {"error": "bad_request", "reason": "vhost_or_user_not_found"})
        assert (await api.put("/api/permissions/nope/guest", json=body)).status_code == 400
        wrong = await api.put("/api/permissions/%2F/guest", json={"configure": 1})
        assert wrong.status_code == 400
        assert (await api.get("/api/permissions/%2F/guest")).json()["configure"] == ".*"
        assert (await api.get("/api/vhosts/nope/permissions")).status_code == 404


async def test_users_without_permissions_and_bulk_delete() -> None:
    async with management() as (_, api):
        for name in ("a", "b", "c"):
            await api.put(f"/api/users/{name}", json={"password": "pw", "tags": ""})
        await api.put("/api/permissions/%2F/c", json={"configure": ".*", "write": ".*",
                                                      "read": ".*"})
        without = (await api.get("/api/users/without-permissions")).json()
        assert [u["name"] for u in without] == ["a", "b"]
        missing = await api.post("/api/users/bulk-delete", json={})
        assert missing.json()["reason"] == "[{key_missing,users}]"
        assert (await api.post("/api/users/bulk-delete",
                               json={"users": "a"})).status_code == 400
        refused = await api.post("/api/users/bulk-delete", json={"users": ["a", "guest"]})
        assert refused.status_code == 400
        assert (await api.get("/api/users/a")).status_code == 200
        deleted = await api.post("/api/users/bulk-delete", json={"users": ["a", "b", "zz"]})
        assert deleted.status_code == 204
        assert [u["name"] for u in (await api.get("/api/users")).json()] == ["c", "guest"]


async def test_parameters_limits_feature_flags_and_auth() -> None:
    async with management() as (_, api):
        for path in ("/api/parameters", "/api/parameters/shovel",
                     "/api/parameters/shovel/%2F", "/api/vhost-limits",
                     "/api/vhost-limits/%2F", "/api/user-limits", "/api/feature-flags"):
            response = await api.get(path)
            assert (path, response.status_code, response.json()) == (path, 200, [])
        assert (await api.get("/api/parameters/shovel/%2F/x")).status_code == 404
        overview = (await api.get("/api/overview")).json()
        names = {p["name"]: p["value"] for p in
                 (await api.get("/api/global-parameters")).json()}
        assert names["cluster_name"] == overview["cluster_name"]
        assert "internal_cluster_id" in names
        one = await api.get("/api/global-parameters/cluster_name")
        assert one.json() == {"name": "cluster_name", "value": overview["cluster_name"]}
        assert (await api.get("/api/global-parameters/nope")).status_code == 404
        auth = await api.get("/api/auth", auth=None)
        assert (auth.status_code, auth.json()["oauth_enabled"]) == (200, False)


async def test_queue_actions_and_more_health_checks() -> None:
    async with management(max_connections=1) as (broker, api):
        await api.put("/api/queues/%2F/q", json={})
        assert (await api.post("/api/queues/%2F/q/actions",
                               json={"action": "sync"})).status_code == 204
        assert (await api.post("/api/queues/%2F/q/actions",
                               json={"action": "x"})).status_code == 400
        assert (await api.post("/api/queues/%2F/nope/actions",
                               json={"action": "sync"})).status_code == 404
        await until(lambda: not broker.server.clients, "the readiness probe to leave")
        for check in ("ready-to-serve-clients", "is-in-service", "below-node-connection-limit"):
            assert (await api.get(f"/api/health/checks/{check}")).json() == {"status": "ok"}
        connection = await aio_pika.connect(broker.url)
        async with connection:
            full = await api.get("/api/health/checks/below-node-connection-limit")
            assert (full.status_code, full.json()["status"]) == (503, "failed")


async def test_disable_stats_and_queue_totals() -> None:
    async with management() as (_, api):
        await api.put("/api/queues/%2F/q", json={})
        trimmed = (await api.get("/api/queues", params={"disable_stats": "true"})).json()
        assert list(trimmed[0]) == ["arguments", "auto_delete", "durable", "exclusive", "name",
                                    "node", "state", "type", "vhost"]
        totals = (await api.get("/api/queues/%2F", params={
            "disable_stats": "true", "enable_queue_totals": "true"})).json()
        assert {"messages", "messages_ready", "messages_unacknowledged"} <= set(totals[0])
        assert "messages_details" not in totals[0]
        exchanges = (await api.get("/api/exchanges", params={"disable_stats": "true"})).json()
        assert all("message_stats" not in x for x in exchanges)
        assert "message_stats" in (await api.get("/api/exchanges")).json()[0]
        overview = (await api.get("/api/overview", params={"disable_stats": "true"})).json()
        assert overview["disable_stats"] is True
        assert "message_stats" not in overview and "queue_totals" not in overview
        with_totals = (await api.get("/api/overview", params={
            "disable_stats": "true", "enable_queue_totals": "true"})).json()
        assert with_totals["queue_totals"]["messages"] == 0


async def test_rabbitmqadmin_strings_and_unknown_fields() -> None:
    async with management() as (_, api):
        declared = await api.put("/api/queues/%2F/q", json={
            "auto_delete": "false", "durable": "false", "arguments": {}, "name": "q",
            "vhost": "/"})
        assert declared.status_code == 201
        queue = (await api.get("/api/queues/%2F/q")).json()
        assert (queue["durable"], queue["auto_delete"]) == (False, False)
        await api.put("/api/exchanges/%2F/x", json={"type": "fanout", "durable": "true",
                                                    "internal": "false", "extra": 1})
        assert (await api.get("/api/exchanges/%2F/x")).json()["durable"] is True


async def test_bad_input_is_refused_and_changes_nothing() -> None:
    async with management() as (_, api):
        await api.put("/api/vhosts/with%20space", json={})
        cases = [
            ("PUT", "/api/queues/with%20space/q", {"durable": "yes"}, "'durable' must be"),
            ("PUT", "/api/queues/with%20space/q", {"arguments": []}, "'arguments' must be"),
            ("PUT", "/api/queues/with%20space/q", {"arguments": {"x-max-length": "x"}},
             "x-max-length"),
            ("PUT", "/api/exchanges/with%20space/x", {"type": "bogus"},
             "invalid exchange type 'bogus'"),
            ("PUT", "/api/exchanges/with%20space/x", {"type": 3}, "'type' must be a string"),
            ("PUT", "/api/users/u", {"password": "p", "tags": 3}, "tags"),
            ("PUT", "/api/policies/with%20space/p", {"pattern": ".*"}, ""),
        ]
        for method, path, body, reason in cases:
            response = await api.request(method, path, json=body)
            assert response.status_code == 400, (path, body, response.text)
            assert set(response.json()) == {"error", "reason"}
            assert reason in response.json()["reason"], (path, body)
        for raw in (b"{nope", b'"a string"', b"[1]", b"[" * 100000):
            response = await api.put("/api/queues/with%20space/q", content=raw)
            assert response.json() == {"error": "bad_request", "reason": "not_json"}, raw
        assert (await api.get("/api/queues/with%20space")).json() == []
        assert (await api.get("/api/exchanges/with%20space/x")).status_code == 404
        assert (await api.get("/api/users/u")).status_code == 404
        assert (await api.get("/api/policies/with%20space")).json() == []
        assert (await api.get("/api/queues/no%20such")).status_code == 404
        assert (await api.get("/api/users/nobody")).status_code == 404
        assert (await api.delete("/api/users/nobody")).status_code == 404


async def test_rabbitmqadmin_flow_with_bindings_publish_and_get() -> None:
    async with management() as (_, api):
        assert (await api.put("/api/exchanges/%2F/orders", json={
            "type": "direct", "auto_delete": "false", "durable": "true", "internal": "false",
            "arguments": {}, "name": "orders", "vhost": "/"})).status_code == 201
        assert (await api.put("/api/queues/%2F/paid", json={
            "auto_delete": "false", "durable": "true", "arguments": {}, "name": "paid",
            "vhost": "/"})).status_code == 201
        bound = await api.post("/api/bindings/%2F/e/orders/q/paid", json={
            "routing_key": "paid", "arguments": {}, "source": "orders",
            "destination_type": "q", "destination": "paid", "vhost": "/"})
        assert bound.status_code == 201
        assert (await api.post("/api/exchanges/%2F/orders/publish", json={
            "properties": {}, "exchange": "orders", "payload_encoding": "string",
            "routing_key": "paid", "payload": "order 1", "vhost": "/"})).json() == {
            "routed": True}
        listed = (await api.get("/api/queues/%2F", params={"columns": "name,messages"})).json()
        assert listed == [{"name": "paid", "messages": 1}]
        (message,) = (await api.post("/api/queues/%2F/paid/get", json={
            "count": "1", "ackmode": "ack_requeue_false", "encoding": "auto", "queue": "paid",
            "vhost": "/"})).json()
        assert (message["payload"], message["exchange"]) == ("order 1", "orders")
        exported = (await api.get("/api/definitions")).json()
        assert [b["destination"] for b in exported["bindings"] if b["source"] == "orders"] == [
            "paid"]
        path = urllib.parse.urljoin("/api/bindings/%2F/e/orders/q/paid",
                                    bound.headers["location"])
        assert path == "/api/bindings/%2F/e/orders/q/paid/paid"
        assert (await api.delete(path)).status_code == 204
        assert (await api.delete("/api/queues/%2F/paid")).status_code == 204
        assert (await api.delete("/api/exchanges/%2F/orders")).status_code == 204
        assert (await api.post("/api/definitions", json=exported)).status_code == 204
        (binding,) = (await api.get("/api/bindings/%2F/e/orders/q/paid")).json()
        assert binding["properties_key"] == "paid"
