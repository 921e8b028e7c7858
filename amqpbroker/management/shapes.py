"""The management API's JSON objects, in RabbitMQ's shape: the one place that knows the
field names of queues, exchanges, bindings, connections, channels, consumers, vhosts,
users, permissions and policies as `rabbitmq_management` serves them."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import urllib.parse
from collections.abc import Collection, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from amqpbroker import __version__
from amqpbroker.broker import properties
from amqpbroker.broker.exchange import Exchange
from amqpbroker.broker.queue import Queue
from amqpbroker.definitions import EXCHANGE_TYPES, jsonable

if TYPE_CHECKING:
    from amqpbroker.broker.access import TopicPermission, User
    from amqpbroker.broker.channel import Channel
    from amqpbroker.broker.message import Entry
    from amqpbroker.broker.policies import Policy
    from amqpbroker.broker.vhost import VirtualHost
    from amqpbroker.management.statistics import View
    from amqpbroker.transport.bridge import ClientConnection

NODE = f"rabbit@{socket.gethostname()}"
RATE = {"rate": 0.0}
AUTH_MECHANISMS = ("PLAIN", "AMQPLAIN")
PLUGINS = ("rabbitmq_management", "rabbitmq_prometheus")
RABBITMQ_NAMES = {"message_type": "type"}  # pamqp's property names that RabbitMQ spells so


def amqp_properties(fields: dict[str, Any]) -> dict[str, Any]:
    """Message properties from the API's JSON (RabbitMQ's names) to pamqp's names."""
    names = {rabbitmq: pamqp for pamqp, rabbitmq in RABBITMQ_NAMES.items()}
    return {names.get(name, name): value for name, value in fields.items()}


def counted(name: str, value: int) -> dict[str, Any]:
    """A count with its `*_details` twin, where no statistics are sampled (rate 0.0)."""
    return {name: value, f"{name}_details": dict(RATE)}


def unacked_by_queue(clients: Iterable[ClientConnection]) -> dict[Queue, tuple[int, int]]:
    """(unacked messages, their body bytes) of every queue, over every connection."""
    found: dict[Queue, tuple[int, int]] = {}
    for client in clients:
        session = client.session
        if session is None:
            continue
        for channel in session.channels.values():
            for record in channel.unacked.values():
                count, size = found.get(record.queue, (0, 0))
                found[record.queue] = (count + 1, size + len(record.entry.message.body))
    return found


def queue(q: Queue, unacked: tuple[int, int] = (0, 0), *, stats: View | None = None
          ) -> dict[str, Any]:
    ready, unacked_count = q.message_count, unacked[0]
    consumer_tags = [c.tag for c in q.consumers]
    found = {
        "name": q.name, "vhost": q.vhost_name, "durable": q.durable,
        "auto_delete": q.auto_delete, "exclusive": q.exclusive_owner is not None,
        "arguments": jsonable(q.arguments), "type": q.queue_type, "state": "running",
        "node": NODE, **counted("messages", ready + unacked_count),
        **counted("messages_ready", ready), **counted("messages_unacknowledged", unacked_count),
        "consumers": len(consumer_tags), "consumer_capacity": 1.0 if consumer_tags else 0.0,
        "consumer_utilisation": 1.0 if consumer_tags else 0.0,
        "message_bytes": q.bytes + unacked[1], "message_bytes_ready": q.bytes,
        "message_bytes_unacknowledged": unacked[1], "messages_ram": q.buffer.in_memory,
        "memory": q.memory,
        "exclusive_consumer_tag": next((c.tag for c in q.consumers if c.exclusive), None),
        "single_active_consumer_tag": consumer_tags[0] if q.single_active and consumer_tags
        else None,
        "policy": q.policy.name if q.policy is not None else None,
        "operator_policy": q.operator_policy.name if q.operator_policy is not None else None,
        "effective_policy_definition": jsonable(q.effective_policy_definition),
        "message_stats": {},
    }
    if stats is not None:
        found.update(stats.queue(q))
    return found


def exchange(x: Exchange, *, stats: View | None = None) -> dict[str, Any]:
    return {"name": x.name, "vhost": x.vhost_name, "type": x.type, "durable": x.durable,
            "auto_delete": x.auto_delete, "internal": x.internal,
            "arguments": jsonable(x.arguments), "user_who_performed_action": "",
            "policy": x.policy.name if x.policy is not None else None,
            **(stats.exchange(x) if stats is not None else {"message_stats": {}})}


def properties_key(routing_key: str, arguments: dict[str, Any]) -> str:
    """How a binding is named in paths: the routing key escaped, and a short hash of
    the arguments when there are any (RabbitMQ's `rk~HASH`)."""
    key = urllib.parse.quote(routing_key, safe="") or "~"
    if not arguments:
        return key
    digest = hashlib.sha1(repr(sorted(jsonable(arguments).items())).encode()).digest()
    return f"{key}~{base64.urlsafe_b64encode(digest)[:6].decode()}"


def bindings(vhost: VirtualHost) -> Iterator[dict[str, Any]]:
    """Every binding of a vhost, default-exchange ones included (as RabbitMQ lists them)."""
    for q in sorted(vhost.queues.values(), key=lambda q: q.name):
        yield binding(vhost.name, "", q.name, "queue", q.name, {})
    for x in sorted(vhost.exchanges.values(), key=lambda x: x.name):
        for (destination, routing_key, _frozen), arguments in x.bindings.items():
            kind = "queue" if isinstance(destination, Queue) else "exchange"
            yield binding(vhost.name, x.name, destination.name, kind, routing_key, arguments)


def binding(vhost: str, source: str, destination: str, kind: str, routing_key: str,
            arguments: dict[str, Any]) -> dict[str, Any]:
    return {"source": source, "vhost": vhost, "destination": destination,
            "destination_type": kind, "routing_key": routing_key,
            "arguments": jsonable(arguments),
            "properties_key": properties_key(routing_key, arguments)}


def connection_name(client: ClientConnection) -> str:
    """RabbitMQ's name of a connection: the client's address -> the address of the
    listener it connected to (AMQP, MQTT, STOMP or WebSocket)."""
    return f"{client.peer} -> {client.local}"


def connection(client: ClientConnection, *, stats: View | None = None) -> dict[str, Any]:
    proto = client.protocol
    host, port = _peer(client)
    local_host, _, local_port = client.local.rpartition(":")
    props = jsonable(proto.client_properties)
    web = "Web " if client.web else ""
    return {
        "name": connection_name(client), "node": NODE, "user": proto.username,
        "vhost": proto.vhost, "state": "running", "protocol": web + proto.protocol_name,
        "auth_mechanism": proto.mechanism, "peer_host": host, "peer_port": port,
        "host": local_host,
        "port": int(local_port) if local_port.isdigit() else 0,
        "channels": len(client.session.channels) if client.session is not None else 0,
        "frame_max": proto.frame_max, "channel_max": proto.channel_max,
        "timeout": proto.heartbeat, "type": "network", "ssl": False,
        "client_properties": props,
        "user_provided_name": props.get("connection_name") if isinstance(props, dict)
        else None,
        **(stats.connection(client) if stats is not None
           else {**counted("recv_oct", client.recv_oct),
                 **counted("send_oct", client.send_oct)}),
    }


def _peer(client: ClientConnection) -> tuple[str, int]:
    host, _, port = client.peer.rpartition(":")
    return host, int(port) if port.isdigit() else 0


def channels(client: ClientConnection, *, stats: View | None = None
             ) -> Iterator[dict[str, Any]]:
    for ch, details in _open_channels(client):
        yield {
            "name": details["name"], "number": ch.id, "node": NODE,
            "user": details["user"], "vhost": ch.session.vhost.name, "state": "running",
            "prefetch_count": ch.consumer_prefetch, "global_prefetch_count": ch.prefetch,
            "confirm": ch.confirm, "transactional": ch.tx is not None,
            "consumer_count": len(ch.consumers),
            "messages_unacknowledged": len(ch.unacked),
            "messages_unconfirmed": 0, "messages_uncommitted": len(ch.tx or ()),
            "acks_uncommitted": 0,
            "connection_details": {"name": details["connection_name"],
                                   "peer_host": details["peer_host"],
                                   "peer_port": details["peer_port"]},
            **(stats.channel(ch) if stats is not None else {"message_stats": {}}),
        }


def _open_channels(client: ClientConnection) -> Iterator[tuple[Channel, dict[str, Any]]]:
    """A connection's channels in number order, each with its `channel_details`."""
    session = client.session
    if session is None:
        return
    name = connection_name(client)
    host, port = _peer(client)
    for number, ch in sorted(session.channels.items()):
        yield ch, {"connection_name": name, "name": f"{name} ({number})", "node": NODE,
                   "number": number, "peer_host": host, "peer_port": port,
                   "user": session.username}


def consumers(client: ClientConnection) -> Iterator[dict[str, Any]]:
    for ch, details in _open_channels(client):
        for consumer in ch.consumers.values():
            q = consumer.queue
            yield {
                "consumer_tag": consumer.tag,
                "queue": {"name": q.name if q else "", "vhost": ch.session.vhost.name},
                "channel_details": details,
                "ack_required": not consumer.no_ack, "exclusive": consumer.exclusive,
                "prefetch_count": consumer.prefetch, "active": True,
                "activity_status": "up", "arguments": jsonable(consumer.arguments),
            }


def got(entry: Entry, left: int, as_base64: bool, truncate: int | None) -> dict[str, Any]:
    """One message of `POST /api/queues/{vhost}/{name}/get`."""
    message = entry.message
    body = message.body[:truncate] if truncate is not None else message.body
    decoded = properties.decode(message)
    fields = {RABBITMQ_NAMES.get(name, name): getattr(decoded, name)
              for name in decoded.attributes() if getattr(decoded, name) not in (None, "")}
    try:
        payload, encoding = (body.decode("utf-8"), "string") if not as_base64 else ("", "")
    except UnicodeDecodeError:
        payload = ""
    if as_base64 or (not payload and body):
        payload, encoding = base64.b64encode(body).decode("ascii"), "base64"
    return {"payload_bytes": len(message.body), "redelivered": entry.redelivered,
            "exchange": message.exchange, "routing_key": message.routing_key,
            "message_count": left, "properties": jsonable(fields) or [],
            "payload": payload, "payload_encoding": encoding}


def vhost(v: VirtualHost, *, stats: View | None = None) -> dict[str, Any]:
    ready = sum(q.message_count for q in v.queues.values())
    return {"name": v.name, "description": "", "tags": [], "default_queue_type": "classic",
            "metadata": {"description": "", "tags": []}, "tracing": False,
            "cluster_state": {NODE: "running"},
            **(stats.vhost(v) if stats is not None
               else {**counted("messages", ready), **counted("messages_ready", ready),
                     **counted("messages_unacknowledged", 0)})}


def user(u: User) -> dict[str, Any]:
    return {"name": u.name, "password_hash": u.password_hash,
            "hashing_algorithm": u.hashing_algorithm, "tags": list(u.tags), "limits": {}}


def permission(user_name: str, vhost_name: str, configure: str, write: str,
               read: str) -> dict[str, Any]:
    return {"user": user_name, "vhost": vhost_name, "configure": configure, "write": write,
            "read": read}


def policy(p: Policy) -> dict[str, Any]:
    return p.to_json()


def overview(product_version: str = __version__) -> dict[str, Any]:
    return {
        "management_version": product_version, "rates_mode": "basic",
        "product_version": product_version, "product_name": "amqpbroker",
        "rabbitmq_version": "3.13.0", "cluster_name": NODE,
        "erlang_version": "n/a (Python)", "erlang_full_version": "n/a (Python)",
        "release_series_support_status": "supported", "disable_stats": False,
        "enable_queue_totals": True, "node": NODE,
        "sample_retention_policies": {"global": [600, 3600, 28800, 86400],
                                      "basic": [600, 3600], "detailed": [600]},
        "statistics_db_event_queue": 0, "contexts": [],
    }


def exchange_types() -> list[dict[str, Any]]:
    return [{"name": t, "description": "", "enabled": True} for t in EXCHANGE_TYPES]


def node(*, uptime: float, mem_used: int, mem_limit: int, disk_free: int,
         disk_free_limit: int, fd_used: int, fd_total: int, sockets_used: int,
         proc_used: int, alarms: Collection[str], db_dir: str) -> dict[str, Any]:
    """The one node of `/api/nodes`; `uptime` in seconds (served in milliseconds)."""
    return {
        "name": NODE, "type": "disc", "running": True, "being_drained": False,
        "uptime": int(uptime * 1000), "mem_used": mem_used, "mem_limit": mem_limit,
        "mem_alarm": "memory" in alarms, "disk_free": disk_free,
        "disk_free_limit": disk_free_limit, "disk_free_alarm": "disk" in alarms,
        "fd_used": fd_used, "fd_total": fd_total, "sockets_used": sockets_used,
        "sockets_total": fd_total * 9 // 10, "proc_used": proc_used, "proc_total": 1048576,
        "processors": os.cpu_count() or 1, "run_queue": 0, "net_ticktime": 60,
        "os_pid": str(os.getpid()), "rates_mode": "basic", "partitions": [],
        "cluster_links": [], "exchange_types": exchange_types(),
        "auth_mechanisms": [{"name": m, "description": "", "enabled": True}
                            for m in AUTH_MECHANISMS],
        "applications": [{"name": "amqpbroker", "description": "AMQP 0-9-1 broker",
                          "version": __version__}],
        "contexts": [], "enabled_plugins": list(PLUGINS), "log_files": [],
        "config_files": [], "db_dir": db_dir,
        **{f"{name}_details": dict(RATE) for name in ("mem_used", "disk_free", "fd_used",
                                                      "sockets_used", "proc_used")},
    }


def topic_permission(user_name: str, vhost_name: str, t: TopicPermission) -> dict[str, Any]:
    return {"user": user_name, "vhost": vhost_name, "exchange": t.exchange, "write": t.write,
            "read": t.read}


def global_parameters(cluster_id: str) -> list[dict[str, Any]]:
    return [{"name": "cluster_name", "value": NODE},
            {"name": "internal_cluster_id", "value": cluster_id}]


QUEUE_BASICS = ("arguments", "auto_delete", "durable", "exclusive", "name", "node", "state",
                "type", "vhost")
QUEUE_TOTALS = ("messages", "messages_ready", "messages_unacknowledged")


def without_stats(item: dict[str, Any]) -> dict[str, Any]:
    """An object as `?disable_stats=true` serves it: no `message_stats`, no `*_details`."""
    return {key: value for key, value in item.items()
            if key != "message_stats" and not key.endswith("_details")}


def queue_without_stats(item: dict[str, Any], totals: bool) -> dict[str, Any]:
    """A queue as `?disable_stats=true` serves it, its message counts only with
    `enable_queue_totals=true`."""
    keys = (*QUEUE_BASICS, *QUEUE_TOTALS) if totals else QUEUE_BASICS
    return {key: item[key] for key in sorted(keys)}
