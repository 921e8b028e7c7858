"""The management HTTP API, in RabbitMQ's shape (`/api/...`): a Starlette app that reads
the broker model directly and changes definitions only through the model's own entry
points (vhost declares, Access, policies), waiting for the store before answering.

Auth is HTTP Basic against the broker's users; the tags decide what a user may do, as in
RabbitMQ: `administrator` everything, `monitoring` read everything, `policymaker` and
`management` their own vhosts. Vhost `/` is `%2F` in paths, so routes match the raw
(still percent-encoded) path and every path parameter is decoded on its own.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import re
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
from pamqp.commands import Basic
from pamqp.header import ContentHeader
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from amqpbroker import definitions, errors
from amqpbroker.broker.exchange import Exchange
from amqpbroker.broker.policies import PolicyError
from amqpbroker.broker.queue import Queue
from amqpbroker.management import console, metrics, shapes
from amqpbroker.management.statistics import Statistics, View
from amqpbroker.transport.alarms import total_memory
from amqpbroker.transport.bridge import build_message

if TYPE_CHECKING:
    from amqpbroker.broker.access import User
    from amqpbroker.broker.message import Entry
    from amqpbroker.broker.vhost import VirtualHost
    from amqpbroker.transport.server import Server

T = TypeVar("T")
MANAGEMENT_TAGS = ("administrator", "monitoring", "policymaker", "management")
MAX_BODY = 10 * 1024 * 1024
MAX_PAGE_SIZE = 500
IMPORT_STEP = 200  # definitions imported between yields to the event loop
ACKMODES = ("ack_requeue_true", "ack_requeue_false", "reject_requeue_true",
            "reject_requeue_false")


class Refused(Exception):
    """An answer other than success, in RabbitMQ's error shape."""

    def __init__(self, status: int, error: str, reason: str, *,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.response = JSONResponse({"error": error, "reason": reason}, status,
                                     headers=headers)


def not_found() -> Refused:
    return Refused(404, "Object Not Found", "Not Found")


def bad_request(reason: str) -> Refused:
    return Refused(400, "bad_request", reason)


def not_authorised(reason: str) -> Refused:
    return Refused(401, "not_authorized", reason)


class RawPath:
    """Route on the percent-encoded path, so that `%2F` stays inside one segment."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("raw_path"):
            scope = dict(scope, path=scope["raw_path"].split(b"?")[0].decode("latin-1"))
        await self.app(scope, receive, send)


Handler = Callable[["Api", Request, "User"], Awaitable[Response]]


class Api:
    """The routes of one server's management API."""

    def __init__(self, server: Server, statistics: Statistics) -> None:
        self.server = server
        self.broker = server.broker
        self.statistics = statistics

    # --- plumbing ------------------------------------------------------------------

    def user(self, request: Request) -> User:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("basic "):
            raise Refused(401, "not_authorized", "Not_Authorized",
                          headers={"www-authenticate": 'Basic realm="RabbitMQ Management"'})
        try:
            name, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise not_authorised("Login failed") from None
        host = request.client.host if request.client else ""
        loopback = host in ("127.0.0.1", "::1", "localhost", "testclient")
        user = self.broker.access.authenticate(name, password, loopback)
        if user is None:
            raise not_authorised("Login failed")
        if not set(user.tags) & set(MANAGEMENT_TAGS):
            raise not_authorised("Not management user")
        return user

    @staticmethod
    def is_admin(user: User) -> bool:
        return "administrator" in user.tags

    def require_admin(self, user: User) -> None:
        if not self.is_admin(user):
            raise not_authorised("Not administrator user")

    def may_see(self, user: User, vhost: str) -> bool:
        return (self.is_admin(user) or "monitoring" in user.tags
                or (user.name, vhost) in self.broker.access.permissions)

    def vhost(self, user: User, name: str) -> VirtualHost:
        vhost = self.broker.vhosts.get(name)
        if vhost is None:
            raise not_found()
        if not self.may_see(user, name):
            raise not_authorised("User not authorised to access virtual host")
        return vhost

    def visible_vhosts(self, user: User, name: str | None) -> list[VirtualHost]:
        if name is not None:
            return [self.vhost(user, name)]
        return [v for n, v in sorted(self.broker.vhosts.items()) if self.may_see(user, n)]

    async def body(self, request: Request, not_object: str = "not_json") -> dict[str, Any]:
        """The JSON object a request carries (`{}` when empty); 400 `not_json` when it is
        not JSON, `not_object` when it is JSON but not an object."""
        data = await request.body()
        if len(data) > MAX_BODY:
            raise Refused(413, "bad_request", "Payload too large")
        if not data:
            return {}
        try:
            value = json.loads(data)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise bad_request("not_json") from None
        if not isinstance(value, dict):
            raise bad_request(not_object)
        return value

    async def durable(self) -> None:
        """Wait until what the change recorded is on disk."""
        await self.server.committer.wait(self.broker.store.recorded)

    def view(self, request: Request) -> View:
        """The statistics fields for one answer to `request`."""
        return View(self.statistics, request.query_params)

    def clients(self) -> list[Any]:
        return [c for c in self.server.clients if c.session is not None]

    # --- node -----------------------------------------------------------------------

    async def overview(self, request: Request, user: User) -> Response:
        queues = [q for v in self.broker.vhosts.values() for q in v.queues.values()]
        clients = self.clients()
        body = shapes.overview()
        body.update({
            "exchange_types": shapes.exchange_types(),
            **self.view(request).node(),
            "object_totals": {
                "connections": len(clients),
                "channels": sum(len(c.session.channels) for c in clients),
                "consumers": sum(q.consumer_count for q in queues),
                "exchanges": sum(len(v.exchanges) + 1 for v in self.broker.vhosts.values()),
                "queues": len(queues)},
            "listeners": [{"node": shapes.NODE, "protocol": "amqp",
                           "ip_address": self.server.host, "port": self.server.port,
                           "socket_opts": {}}],
        })
        if flag(request, "disable_stats"):
            body.update(disable_stats=True, enable_queue_totals=flag(request,
                                                                     "enable_queue_totals"))
            for key in ("message_stats", "churn_rates",
                        *(() if body["enable_queue_totals"] else ("queue_totals",))):
                del body[key]
        return JSONResponse(body)

    def require_monitor(self, user: User) -> None:
        if not (self.is_admin(user) or "monitoring" in user.tags):
            raise not_authorised("Not monitor user")

    def node(self) -> dict[str, Any]:
        limits = self.server.resources
        return shapes.node(
            uptime=metrics.uptime(), mem_used=self.server.memory.used(),
            mem_limit=limits.memory or total_memory(), disk_free=metrics.free_disk(limits),
            disk_free_limit=limits.disk_free, fd_used=metrics.open_fds(),
            fd_total=metrics.fd_limit(), sockets_used=len(self.server.clients),
            proc_used=len(asyncio.all_tasks()), alarms=self.broker.alarms,
            db_dir=limits.data_dir or "")

    async def nodes(self, request: Request, user: User) -> Response:
        self.require_monitor(user)
        return listing(request, [self.node()])

    async def node_one(self, request: Request, user: User) -> Response:
        self.require_monitor(user)
        if param(request, "name") != shapes.NODE:
            raise not_found()
        return JSONResponse(self.node())

    async def whoami(self, request: Request, user: User) -> Response:
        return JSONResponse({"name": user.name, "tags": list(user.tags)})

    async def extensions(self, request: Request, user: User) -> Response:
        return JSONResponse([])

    async def cluster_name(self, request: Request, user: User) -> Response:
        return JSONResponse({"name": shapes.NODE})

    # --- vhosts, users, permissions --------------------------------------------------

    async def vhosts(self, request: Request, user: User) -> Response:
        stats = self.view(request)
        return listing(request, [shapes.vhost(v, stats=stats)
                                 for v in self.visible_vhosts(user, None)])

    async def vhost_one(self, request: Request, user: User) -> Response:
        name = param(request, "vhost")
        if request.method == "GET":
            return JSONResponse(shapes.vhost(self.vhost(user, name), stats=self.view(request)))
        self.require_admin(user)
        if request.method == "PUT":
            await self.body(request)
            existed = name in self.broker.vhosts
            self.broker.add_vhost(name)
            await self.durable()
            return Response(status_code=204 if existed else 201)
        if name not in self.broker.vhosts:
            raise not_found()
        for client in self.clients():
            if client.session.vhost.name == name:
                client.shutdown(f"vhost '{name}' is deleted")
        self.broker.delete_vhost(name)
        await self.durable()
        return Response(status_code=204)

    async def users(self, request: Request, user: User) -> Response:
        self.require_admin(user)
        return listing(request, [shapes.user(u) for _, u in
                                 sorted(self.broker.access.users.items())])

    async def user_one(self, request: Request, user: User) -> Response:
        self.require_admin(user)
        name = param(request, "user")
        access = self.broker.access
        if request.method == "GET":
            return JSONResponse(shapes.user(existing(access.users.get(name))))
        if request.method == "PUT":
            body = await self.body(request)
            if "tags" not in body:
                raise bad_request("tags_not_present")
            tags = body["tags"]
            if isinstance(tags, str):
                tags = [t.strip() for t in tags.split(",") if t.strip()]
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                raise bad_request("tags must be a list of strings or a comma-separated string")
            existed = name in access.users
            if isinstance(body.get("password"), str):
                access.add_user(name, body["password"], tags=tags)
            elif isinstance(body.get("password_hash"), str):
                access.add_user(name, password_hash=body["password_hash"], tags=tags,
                                hashing_algorithm=body.get("hashing_algorithm")
                                or "rabbit_password_hashing_sha256")
            elif existed:
                old = access.users[name]
                access.add_user(name, password_hash=old.password_hash,
                                hashing_algorithm=old.hashing_algorithm, tags=tags)
            else:
                raise bad_request("password or password_hash must be given")
            await self.durable()
            return Response(status_code=204 if existed else 201)
        if name not in access.users:
            raise not_found()
        await self.delete_users([name])
        return Response(status_code=204)

    async def delete_users(self, names: list[str]) -> None:
        """Delete the users that exist among `names` and close their connections; 400
        (deleting none) if that would leave no administrator."""
        access = self.broker.access
        admins = {u.name for u in access.users.values() if "administrator" in u.tags}
        if admins and admins <= set(names):
            raise bad_request("cannot delete the last administrator")
        gone = [name for name in names if access.delete_user(name)]
        for client in self.clients():
            if client.session.username in gone:
                client.shutdown(f"user '{client.session.username}' is deleted")
        await self.durable()

    async def users_without_permissions(self, request: Request, user: User) -> Response:
        self.require_admin(user)
        allowed = {u for u, _ in self.broker.access.permissions}
        return listing(request, [shapes.user(u) for n, u in
                                 sorted(self.broker.access.users.items()) if n not in allowed])

    async def users_bulk_delete(self, request: Request, user: User) -> Response:
        """POST `{"users": [names]}`: delete them all (unknown names are skipped)."""
        self.require_admin(user)
        body = await self.body(request)
        if "users" not in body:
            raise bad_request("[{key_missing,users}]")
        names = field(body, "users", list, [])
        if not all(isinstance(name, str) for name in names):
            raise bad_request("'users' must be a list of names")
        await self.delete_users(names)
        return Response(status_code=204)

    def scope(self, request: Request, user: User) -> tuple[str | None, str | None]:
        """The (vhost, user) a permissions list is limited to: `/api/vhosts/{vhost}/...`,
        `/api/users/{user}/...` or neither; 404 for a vhost or user that does not exist."""
        self.require_admin(user)
        vhost, name = optional_param(request, "vhost"), optional_param(request, "user")
        if vhost is not None and vhost not in self.broker.vhosts:
            raise not_found()
        if name is not None and name not in self.broker.access.users:
            raise not_found()
        return vhost, name

    async def permissions(self, request: Request, user: User) -> Response:
        vhost, name = self.scope(request, user)
        found = [shapes.permission(u, v, p.configure, p.write, p.read)
                 for (u, v), p in sorted(self.broker.access.permissions.items())
                 if vhost in (None, v) and name in (None, u)]
        return listing(request, found)

    async def permission_one(self, request: Request, user: User) -> Response:
        self.require_admin(user)
        vhost, name = param(request, "vhost"), param(request, "user")
        access = self.broker.access
        key = (name, vhost)
        if request.method == "GET":
            found = existing(access.permissions.get(key))
            return JSONResponse(shapes.permission(name, vhost, found.configure, found.write,
                                                  found.read))
        if request.method == "PUT":
            body = await self.body(request)
            if name not in access.users or vhost not in self.broker.vhosts:
                raise bad_request("vhost_or_user_not_found")
            configure, write, read = patterns_of(body, ("configure", "write", "read"))
            existed = key in access.permissions
            access.set_permission(name, vhost, configure, write, read)
            await self.durable()
            return Response(status_code=204 if existed else 201)
        if not access.clear_permission(name, vhost):
            raise not_found()
        await self.durable()
        return Response(status_code=204)

    async def topic_permissions(self, request: Request, user: User) -> Response:
        vhost, name = self.scope(request, user)
        return listing(request, [
            shapes.topic_permission(u, v, t)
            for (u, v), topics in sorted(self.broker.access.topic_permissions.items())
            if vhost in (None, v) and name in (None, u) and u in self.broker.access.users
            for _, t in sorted(topics.items())])

    async def topic_permission_one(self, request: Request, user: User) -> Response:
        """GET a user's topic permissions in a vhost (404 if none), PUT one exchange's
        (`{"exchange", "write", "read"}`), DELETE them all."""
        self.require_admin(user)
        vhost, name = param(request, "vhost"), param(request, "user")
        access = self.broker.access
        topics = access.topic_permissions.get((name, vhost), {})
        if request.method == "GET":
            if name not in access.users or not topics:
                raise not_found()
            return JSONResponse([shapes.topic_permission(name, vhost, t)
                                 for _, t in sorted(topics.items())])
        if request.method == "PUT":
            body = await self.body(request)
            if name not in access.users or vhost not in self.broker.vhosts:
                raise bad_request("vhost_or_user_not_found")
            if "exchange" not in body:
                raise bad_request("[{key_missing,exchange}]")
            exchange = field(body, "exchange", str, "")
            write, read = patterns_of(body, ("write", "read"))
            existed = exchange in topics
            access.set_topic_permission(name, vhost, exchange, write, read)
            await self.durable()
            return Response(status_code=204 if existed else 201)
        if not topics:
            raise not_found()
        for exchange in list(topics):
            access.clear_topic_permission(name, vhost, exchange)
        await self.durable()
        return Response(status_code=204)

    # --- policies ----------------------------------------------------------------------

    async def policies(self, request: Request, user: User) -> Response:
        operator = request.url.path.startswith("/api/operator-policies")
        hosts = self.visible_vhosts(user, optional_param(request, "vhost"))
        return listing(request, [
            shapes.policy(p) for v in hosts
            for _, p in sorted((v.operator_policies if operator else v.policies).items())])

    async def policy_one(self, request: Request, user: User) -> Response:
        operator = request.url.path.startswith("/api/operator-policies")
        vhost = self.vhost(user, param(request, "vhost"))
        name = param(request, "name")
        table = vhost.operator_policies if operator else vhost.policies
        if request.method == "GET":
            if name not in table:
                raise not_found()
            return JSONResponse(shapes.policy(table[name]))
        if not (self.is_admin(user) or (not operator and "policymaker" in user.tags)):
            raise not_authorised("Not policymaker user")
        if request.method == "PUT":
            body = await self.body(request)
            existed = name in table
            try:
                vhost.set_policy(name, body.get("pattern"),  # type: ignore[arg-type]
                                 body.get("definition"),  # type: ignore[arg-type]
                                 body.get("priority", 0), body.get("apply-to", "all"),
                                 operator=operator)
            except PolicyError as exc:
                raise bad_request(str(exc)) from None
            await self.durable()
            return Response(status_code=204 if existed else 201)
        if not vhost.clear_policy(name, operator=operator):
            raise not_found()
        await self.durable()
        return Response(status_code=204)

    # --- exchanges ----------------------------------------------------------------------

    async def exchanges(self, request: Request, user: User) -> Response:
        hosts = self.visible_vhosts(user, optional_param(request, "vhost"))
        found = []
        stats = self.view(request)
        for v in hosts:
            found.append({**shapes.exchange(v.exchanges["amq.direct"]), "name": "",
                          "type": "direct", "vhost": v.name, "policy": None,
                          **stats.default_exchange(v)})
            found.extend(shapes.exchange(x, stats=stats) for _, x in sorted(v.exchanges.items()))
        return listing(request, found)

    async def exchange_one(self, request: Request, user: User) -> Response:
        vhost = self.vhost(user, param(request, "vhost"))
        name = param(request, "name")
        if request.method == "GET":
            return JSONResponse(shapes.exchange(existing(vhost.exchanges.get(name)),
                                                stats=self.view(request)))
        if request.method == "PUT":
            body = await self.body(request)
            existed = name in vhost.exchanges
            type_ = field(body, "type", str, "direct")
            if type_ not in definitions.EXCHANGE_TYPES:
                raise bad_request(f"invalid exchange type '{type_}'")
            with model_errors():
                vhost.declare_exchange(
                    name, type_, False,
                    field(body, "durable", bool, True), field(body, "auto_delete", bool, False),
                    field(body, "internal", bool, False), field(body, "arguments", dict, {}))
            await self.durable()
            return Response(status_code=204 if existed else 201)
        if name not in vhost.exchanges:
            raise not_found()
        with model_errors():
            vhost.delete_exchange(name, request.query_params.get("if-unused") == "true")
        await self.durable()
        return Response(status_code=204)

    # --- queues -------------------------------------------------------------------------

    async def queues(self, request: Request, user: User) -> Response:
        hosts = self.visible_vhosts(user, optional_param(request, "vhost"))
        stats = self.view(request)
        unacked = stats.unacked
        found = [shapes.queue(q, unacked.get(q, (0, 0)), stats=stats) for v in hosts
                 for _, q in sorted(v.queues.items())]
        if flag(request, "disable_stats"):
            totals = flag(request, "enable_queue_totals")
            found = [shapes.queue_without_stats(q, totals) for q in found]
        return listing(request, found)

    async def queue_one(self, request: Request, user: User) -> Response:
        vhost = self.vhost(user, param(request, "vhost"))
        name = param(request, "name")
        if request.method == "GET":
            found = existing(vhost.queues.get(name))
            stats = self.view(request)
            return JSONResponse(shapes.queue(found, stats.unacked.get(found, (0, 0)),
                                             stats=stats))
        if request.method == "PUT":
            body = await self.body(request)
            existed = name in vhost.queues
            with model_errors():
                vhost.declare_queue(None, name, False, field(body, "durable", bool, True),
                                    False, field(body, "auto_delete", bool, False),
                                    field(body, "arguments", dict, {}))
            await self.durable()
            return Response(status_code=204 if existed else 201)
        if name not in vhost.queues:
            raise not_found()
        with model_errors():
            vhost.delete_queue(None, name, request.query_params.get("if-unused") == "true",
                               request.query_params.get("if-empty") == "true")
        await self.durable()
        return Response(status_code=204)

    async def queue_contents(self, request: Request, user: User) -> Response:
        vhost = self.vhost(user, param(request, "vhost"))
        name = param(request, "name")
        if name not in vhost.queues:
            raise not_found()
        with model_errors():
            vhost.purge_queue(None, name)
        return Response(status_code=204)

    async def queue_get(self, request: Request, user: User) -> Response:
        """POST .../get: up to `count` messages, requeued or not as `ackmode` says."""
        vhost = self.vhost(user, param(request, "vhost"))
        queue = vhost.queues.get(param(request, "name"))
        if queue is None:
            raise Refused(404, "not_found",
                          f"NOT_FOUND - no queue '{param(request, 'name')}' in vhost "
                          f"'{vhost.name}'")
        body = await self.body(request)
        required(body, ("ackmode", "count", "encoding"))
        ackmode = body["ackmode"]
        if ackmode not in ACKMODES:
            return Response(status_code=500)
        count, truncate = field(body, "count", int, 1), field(body, "truncate", int, -1)
        if count < 1:
            raise bad_request("count must be a positive integer")
        taken: list[Entry] = []
        while len(taken) < count and (entry := queue.pop()) is not None:
            taken.append(entry)
        found = []
        for left, entry in zip(range(len(taken) - 1, -1, -1), taken, strict=True):
            found.append(shapes.got(entry, queue.message_count + left,
                                    body.get("encoding") == "base64",
                                    truncate if truncate >= 0 else None))
        for entry in reversed(taken):
            if ackmode.endswith("requeue_true"):
                queue.requeue(entry)
            elif ackmode.startswith("reject"):
                queue.discard(entry, "rejected")
            else:
                queue.settle(entry)
        self.broker.dispatch_ready()
        return JSONResponse(found)

    async def exchange_publish(self, request: Request, user: User) -> Response:
        """POST .../publish: route one message; `{"routed": true|false}`."""
        vhost = self.vhost(user, param(request, "vhost"))
        name = param(request, "name")
        exchange = None if name in ("", "amq.default") else vhost.exchanges.get(name)
        if exchange is None and name not in ("", "amq.default"):
            raise bad_request(f"404 NOT_FOUND - no exchange '{name}' in vhost '{vhost.name}'")
        body = await self.body(request)
        required(body, ("routing_key", "properties", "payload", "payload_encoding"))
        routing_key, payload = field(body, "routing_key", str, ""), field(body, "payload", str, "")
        try:
            data = (base64.b64decode(payload, validate=True)
                    if body.get("payload_encoding") == "base64" else payload.encode())
            header = ContentHeader(0, len(data), Basic.Properties(
                **shapes.amqp_properties(field(body, "properties", dict, {})))).marshal()
        except (binascii.Error, TypeError, ValueError) as exc:
            raise bad_request(f"invalid message: {exc}") from None
        message = build_message(name if exchange is not None else "", routing_key, header,
                                data)
        queues = vhost.route_message(exchange, message)
        for queue in queues:
            queue.enqueue(message)
        self.broker.dispatch_ready()
        await self.durable()
        return JSONResponse({"routed": bool(queues)})

    async def bindings(self, request: Request, user: User) -> Response:
        hosts = self.visible_vhosts(user, optional_param(request, "vhost"))
        return listing(request, [b for v in hosts for b in shapes.bindings(v)])

    async def exchange_bindings(self, request: Request, user: User) -> Response:
        """GET .../bindings/source or .../bindings/destination of an exchange."""
        vhost = self.vhost(user, param(request, "vhost"))
        name = exchange_param(request, "name")
        if name and name not in vhost.exchanges:
            raise not_found()
        if request.url.path.endswith("/source"):
            found = [b for b in shapes.bindings(vhost) if b["source"] == name]
        else:
            found = [b for b in shapes.bindings(vhost) if b["destination"] == name
                     and b["destination_type"] == "exchange"]
        return listing(request, found)

    async def queue_bindings(self, request: Request, user: User) -> Response:
        vhost = self.vhost(user, param(request, "vhost"))
        name = param(request, "name")
        if name not in vhost.queues:
            raise not_found()
        return listing(request, [b for b in shapes.bindings(vhost) if b["destination"] == name
                                 and b["destination_type"] == "queue"])

    def binding_ends(self, request: Request, user: User
                     ) -> tuple[VirtualHost, str, str, str]:
        """(vhost, source, destination kind, destination) of a `/api/bindings/{vhost}/e/
        {source}/{kind}/{destination}` path; 404 for another kind."""
        vhost = self.vhost(user, param(request, "vhost"))
        kind = {"q": "queue", "e": "exchange"}.get(request.path_params["kind"])
        if kind is None:
            raise not_found()
        destination = (param(request, "destination") if kind == "queue"
                       else exchange_param(request, "destination"))
        return vhost, exchange_param(request, "source"), kind, destination

    async def bindings_between(self, request: Request, user: User) -> Response:
        """GET the bindings from an exchange to a queue or exchange; POST one more
        (201, with the new binding's path relative to this one in `Location`)."""
        vhost, source, kind, destination = self.binding_ends(request, user)
        if request.method == "GET":
            if not exists(vhost, "exchange", source) or not exists(vhost, kind, destination):
                raise not_found()
            return listing(request, [shapes.binding(vhost.name, source, destination, kind,
                                                    routing_key, arguments)
                                     for routing_key, arguments in
                                     between(vhost, source, kind, destination)])
        body = await self.body(request)
        routing_key = field(body, "routing_key", str, "")
        arguments = field(body, "arguments", dict, {})
        with model_errors():
            if kind == "queue":
                vhost.bind_queue(None, destination, source, routing_key, arguments)
            else:
                vhost.bind_exchange(destination, source, routing_key, arguments)
        await self.durable()
        key = shapes.properties_key(routing_key, arguments)
        location = f"{request.path_params['destination']}/{urllib.parse.quote(key, safe='')}"
        return Response(status_code=201, headers={"location": location})

    async def binding_one(self, request: Request, user: User) -> Response:
        """GET or DELETE one binding, named by its `properties_key` (as listed, or quoted
        once more as the Location header gives it)."""
        vhost, source, kind, destination = self.binding_ends(request, user)
        names = (param(request, "props"), request.path_params["props"])
        for routing_key, arguments in between(vhost, source, kind, destination):
            if shapes.properties_key(routing_key, arguments) in names:
                break
        else:
            raise not_found()
        if request.method == "GET":
            return JSONResponse(shapes.binding(vhost.name, source, destination, kind,
                                               routing_key, arguments))
        with model_errors():
            if kind == "queue":
                vhost.unbind_queue(destination, source, routing_key, arguments)
            else:
                vhost.unbind_exchange(destination, source, routing_key, arguments)
        await self.durable()
        return Response(status_code=204)

    # --- connections ----------------------------------------------------------------------

    def visible_clients(self, request: Request, user: User) -> list[Any]:
        """The connections the user may see, of the path's vhost if it names one."""
        hosts = {v.name for v in self.visible_vhosts(user, optional_param(request, "vhost"))}
        return [c for c in self.clients() if c.session.vhost.name in hosts]

    def client(self, request: Request, user: User) -> Any:
        """The connection the path names, or 404."""
        name = param(request, "name")
        for client in self.visible_clients(request, user):
            if shapes.connection_name(client) == name:
                return client
        raise not_found()

    async def connections(self, request: Request, user: User) -> Response:
        stats = self.view(request)
        return listing(request, [shapes.connection(c, stats=stats)
                                 for c in self.visible_clients(request, user)])

    async def connection_one(self, request: Request, user: User) -> Response:
        client = self.client(request, user)
        if request.method == "GET":
            return JSONResponse(shapes.connection(client, stats=self.view(request)))
        if not (self.is_admin(user) or client.session.username == user.name):
            raise not_authorised("Not administrator user")
        client.shutdown(request.headers.get("x-reason", "Closed via management plugin"))
        return Response(status_code=204)

    async def channels(self, request: Request, user: User) -> Response:
        stats = self.view(request)
        return listing(request, [ch for c in self.visible_clients(request, user)
                                 for ch in shapes.channels(c, stats=stats)])

    async def connection_channels(self, request: Request, user: User) -> Response:
        return listing(request, list(shapes.channels(self.client(request, user),
                                                     stats=self.view(request))))

    async def channel_one(self, request: Request, user: User) -> Response:
        name = param(request, "name")
        for client in self.visible_clients(request, user):
            for channel in shapes.channels(client, stats=self.view(request)):
                if channel["name"] == name:
                    return JSONResponse(channel)
        raise not_found()

    async def consumers(self, request: Request, user: User) -> Response:
        name = optional_param(request, "vhost")
        return listing(request, [c for client in self.clients()
                                 if self.may_see(user, client.session.vhost.name)
                                 and name in (None, client.session.vhost.name)
                                 for c in shapes.consumers(client)])

    # --- runtime parameters and limits (this broker has none of its own) -------------

    async def empty_list(self, request: Request, user: User) -> Response:
        return listing(request, [])

    async def missing(self, request: Request, user: User) -> Response:
        raise not_found()

    async def global_parameters(self, request: Request, user: User) -> Response:
        return listing(request, shapes.global_parameters(metrics.CLUSTER_ID))

    async def global_parameter_one(self, request: Request, user: User) -> Response:
        name = param(request, "name")
        for found in shapes.global_parameters(metrics.CLUSTER_ID):
            if found["name"] == name:
                return JSONResponse(found)
        raise not_found()

    async def queue_actions(self, request: Request, user: User) -> Response:
        """POST `{"action": "sync" | "cancel_sync"}`: nothing to do without mirrors."""
        vhost = self.vhost(user, param(request, "vhost"))
        if param(request, "name") not in vhost.queues:
            raise not_found()
        if (await self.body(request)).get("action") not in ("sync", "cancel_sync"):
            raise bad_request("unknown action")
        return Response(status_code=204)

    # --- definitions and health -----------------------------------------------------------

    async def definitions(self, request: Request, user: User) -> Response:
        """GET or POST the whole broker's definitions, or one vhost's (RabbitMQ's
        per-vhost shape; an unknown vhost is 400 `vhost_not_found`)."""
        self.require_admin(user)
        name = optional_param(request, "vhost")
        if name is not None and name not in self.broker.vhosts:
            raise bad_request("vhost_not_found")
        if request.method == "GET":
            return JSONResponse(definitions.export(self.broker) if name is None
                                else definitions.export_vhost(self.broker, name))
        body = await self.body(request, not_object="failed_to_parse_json")
        try:
            parsed = (definitions.parse(body, "definitions") if name is None
                      else definitions.parse_vhost(body, name))
            for done, _ in enumerate(definitions.steps(self.broker, parsed), 1):
                if done % IMPORT_STEP == 0:
                    await anyio.sleep(0)  # let connections run between bounded steps
        except definitions.DefinitionsError as exc:
            raise bad_request(str(exc)) from None
        await self.durable()
        return Response(status_code=204)

    async def health_alarms(self, request: Request, user: User) -> Response:
        if self.broker.alarms:
            return JSONResponse({"status": "failed", "reason": "There are alarms in effect",
                                 "alarms": sorted(self.broker.alarms)}, 503)
        return JSONResponse({"status": "ok"})

    async def health_ok(self, request: Request, user: User) -> Response:
        return JSONResponse({"status": "ok"})

    async def health_quorum(self, request: Request, user: User) -> Response:
        return JSONResponse({"status": "ok", "reason": "single node cluster"})

    async def health_port(self, request: Request, user: User) -> Response:
        port = request.path_params["port"]
        if port != str(self.server.port):
            return JSONResponse({"status": "failed", "reason": "No active listener",
                                 "missing": int(port) if port.isdigit() else port,
                                 "ports": [self.server.port]}, 503)
        return JSONResponse({"status": "ok", "port": self.server.port})

    async def health_protocol(self, request: Request, user: User) -> Response:
        protocol = request.path_params["protocol"]
        if protocol not in ("amqp", "amqp091"):
            return JSONResponse({"status": "failed", "reason": "No active listener",
                                 "missing": protocol, "protocols": ["amqp"]}, 503)
        return JSONResponse({"status": "ok", "protocol": "amqp"})

    async def health_connection_limit(self, request: Request, user: User) -> Response:
        limit = self.server.max_connections
        if limit is not None and len(self.server.clients) >= limit:
            return JSONResponse({"status": "failed",
                                 "reason": f"node connection limit ({limit}) is reached",
                                 "limit": limit,
                                 "connections": len(self.server.clients)}, 503)
        return JSONResponse({"status": "ok"})

    async def aliveness(self, request: Request, user: User) -> Response:
        vhost = self.vhost(user, param(request, "vhost"))
        with model_errors():
            vhost.declare_queue(None, "aliveness-test", False, True, False, False, {})
        await self.durable()
        return JSONResponse({"status": "ok"})

    # --- the app ----------------------------------------------------------------------------

    def route(self, path: str, handler: Handler, methods: Iterable[str] = ("GET",)) -> Route:
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(self, request, self.user(request))
            except Refused as refused:
                return refused.response
        return Route(path, endpoint, methods=list(methods))

    def app(self, control: ASGIApp | None = None) -> ASGIApp:
        rw = ("GET", "PUT", "DELETE")
        r = self.route
        routes: list[BaseRoute] = [Mount("/api/test", control)] if control else []
        routes += [
            Route("/api/auth", auth_settings),
            r("/api/overview", Api.overview), r("/api/whoami", Api.whoami),
            r("/api/nodes", Api.nodes), r("/api/nodes/{name}", Api.node_one),
            r("/api/extensions", Api.extensions), r("/api/cluster-name", Api.cluster_name),
            r("/api/vhosts", Api.vhosts), r("/api/vhosts/{vhost}", Api.vhost_one, rw),
            r("/api/users", Api.users),
            r("/api/users/without-permissions", Api.users_without_permissions),
            r("/api/users/bulk-delete", Api.users_bulk_delete, ("POST",)),
            r("/api/users/{user}", Api.user_one, rw),
            r("/api/users/{user}/permissions", Api.permissions),
            r("/api/users/{user}/topic-permissions", Api.topic_permissions),
            r("/api/permissions", Api.permissions),
            r("/api/vhosts/{vhost}/permissions", Api.permissions),
            r("/api/permissions/{vhost}/{user}", Api.permission_one, rw),
            r("/api/topic-permissions", Api.topic_permissions),
            r("/api/vhosts/{vhost}/topic-permissions", Api.topic_permissions),
            r("/api/topic-permissions/{vhost}/{user}", Api.topic_permission_one, rw),
            r("/api/parameters", Api.empty_list), r("/api/parameters/{component}", Api.empty_list),
            r("/api/parameters/{component}/{vhost}", Api.empty_list),
            r("/api/parameters/{component}/{vhost}/{name}", Api.missing),
            r("/api/global-parameters", Api.global_parameters),
            r("/api/global-parameters/{name}", Api.global_parameter_one),
            r("/api/vhost-limits", Api.empty_list), r("/api/vhost-limits/{vhost}", Api.empty_list),
            r("/api/user-limits", Api.empty_list), r("/api/user-limits/{user}", Api.empty_list),
            r("/api/feature-flags", Api.empty_list),
            r("/api/policies", Api.policies), r("/api/policies/{vhost}", Api.policies),
            r("/api/policies/{vhost}/{name}", Api.policy_one, rw),
            r("/api/operator-policies", Api.policies),
            r("/api/operator-policies/{vhost}", Api.policies),
            r("/api/operator-policies/{vhost}/{name}", Api.policy_one, rw),
            r("/api/exchanges", Api.exchanges), r("/api/exchanges/{vhost}", Api.exchanges),
            r("/api/exchanges/{vhost}/{name}", Api.exchange_one, rw),
            r("/api/queues", Api.queues), r("/api/queues/{vhost}", Api.queues),
            r("/api/queues/{vhost}/{name}", Api.queue_one, rw),
            r("/api/queues/{vhost}/{name}/contents", Api.queue_contents, ("DELETE",)),
            r("/api/queues/{vhost}/{name}/get", Api.queue_get, ("POST",)),
            r("/api/queues/{vhost}/{name}/actions", Api.queue_actions, ("POST",)),
            r("/api/exchanges/{vhost}/{name}/publish", Api.exchange_publish, ("POST",)),
            r("/api/exchanges/{vhost}/{name}/bindings/source", Api.exchange_bindings),
            r("/api/exchanges/{vhost}/{name}/bindings/destination", Api.exchange_bindings),
            r("/api/queues/{vhost}/{name}/bindings", Api.queue_bindings),
            r("/api/bindings", Api.bindings), r("/api/bindings/{vhost}", Api.bindings),
            r("/api/bindings/{vhost}/e/{source}/{kind}/{destination}", Api.bindings_between,
              ("GET", "POST")),
            r("/api/bindings/{vhost}/e/{source}/{kind}/{destination}/{props}",
              Api.binding_one, ("GET", "DELETE")),
            r("/api/connections", Api.connections),
            r("/api/connections/{name}", Api.connection_one, ("GET", "DELETE")),
            r("/api/connections/{name}/channels", Api.connection_channels),
            r("/api/vhosts/{vhost}/connections", Api.connections),
            r("/api/channels", Api.channels), r("/api/channels/{name}", Api.channel_one),
            r("/api/vhosts/{vhost}/channels", Api.channels),
            r("/api/consumers", Api.consumers), r("/api/consumers/{vhost}", Api.consumers),
            r("/api/definitions", Api.definitions, ("GET", "POST")),
            r("/api/definitions/{vhost}", Api.definitions, ("GET", "POST")),
            r("/api/health/checks/alarms", Api.health_alarms),
            r("/api/health/checks/local-alarms", Api.health_alarms),
            r("/api/health/checks/virtual-hosts", Api.health_ok),
            r("/api/health/checks/ready-to-serve-clients", Api.health_ok),
            r("/api/health/checks/is-in-service", Api.health_ok),
            r("/api/health/checks/below-node-connection-limit", Api.health_connection_limit),
            r("/api/health/checks/node-is-quorum-critical", Api.health_quorum),
            r("/api/health/checks/node-is-mirror-sync-critical", Api.health_quorum),
            r("/api/health/checks/port-listener/{port}", Api.health_port),
            r("/api/health/checks/protocol-listener/{protocol}", Api.health_protocol),
            r("/api/aliveness-test/{vhost}", Api.aliveness),
            *console.routes(),
        ]
        app = Starlette(routes=routes, exception_handlers={
            404: lambda request, exc: not_found().response,
            405: lambda request, exc: Response(status_code=405)})
        return RawPath(app)


async def auth_settings(request: Request) -> Response:
    """`/api/auth`, served without credentials: how the UI logs in (Basic, no OAuth)."""
    return JSONResponse({"oauth_enabled": False, "oauth_client_id": "",
                         "oauth_provider_url": ""})


def create_app(server: Server, statistics: Statistics | None = None,
               control: ASGIApp | None = None) -> ASGIApp:
    """The management API of a running server, as an ASGI app; its rates come from
    `statistics`' samples (by default an unsampled history: every rate 0.0). `control`,
    if given, is served under `/api/test` (test brokers only: it asks for no login)."""
    return Api(server, statistics or Statistics(server, 5.0)).app(control)


def existing(found: T | None) -> T:
    """The object a path names, or the API's 404."""
    if found is None:
        raise not_found()
    return found


def param(request: Request, name: str) -> str:
    return urllib.parse.unquote(request.path_params[name])


KINDS = {bool: "true or false", int: "an integer", str: "a string", dict: "an object",
         list: "a list"}


def field(body: dict[str, Any], key: str, kind: type[T], default: T) -> T:
    """A field of a request body, of the type it must have (`null` or absent: `default`).
    Booleans and integers may come as strings, as rabbitmqadmin sends them."""
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, str) and kind is bool and value in ("true", "false"):
        return value == "true"  # type: ignore[return-value]
    if isinstance(value, str) and kind is int and value.lstrip("-").isdigit():
        return int(value)  # type: ignore[return-value]
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise bad_request(f"'{key}' must be {KINDS[kind]}")
    return value


def required(body: dict[str, Any], keys: tuple[str, ...]) -> None:
    """400 naming the keys the body lacks, as RabbitMQ does: `[{key_missing,count}]`."""
    missing = [f"{{key_missing,{key}}}" for key in keys if key not in body]
    if missing:
        raise bad_request(f"[{','.join(missing)}]")


def patterns_of(body: dict[str, Any], kinds: tuple[str, ...]) -> list[str]:
    """The regular expressions of a (topic) permission body (absent: `""`); 400 for one
    that is not a string or does not compile."""
    patterns = [field(body, kind, str, "") for kind in kinds]
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise bad_request(f"invalid regular expression '{pattern}': {exc}") from None
    return patterns


def exchange_param(request: Request, name: str) -> str:
    """An exchange's name in a path: `amq.default` is the default exchange `""`."""
    value = param(request, name)
    return "" if value == "amq.default" else value


def exists(vhost: VirtualHost, kind: str, name: str) -> bool:
    """Is there an exchange (`""` included) or a queue of that name in the vhost?"""
    if kind == "queue":
        return name in vhost.queues
    return name == "" or name in vhost.exchanges


def between(vhost: VirtualHost, source: str, kind: str, destination: str
            ) -> list[tuple[str, dict[str, Any]]]:
    """(routing key, arguments) of every binding from the exchange to the queue or
    exchange, the default exchange's implicit one included."""
    if source == "":
        return [(destination, {})] if kind == "queue" and destination in vhost.queues else []
    exchange = vhost.exchanges.get(source)
    if exchange is None:
        return []
    wanted = Queue if kind == "queue" else Exchange
    return [(routing_key, arguments)
            for (target, routing_key, _frozen), arguments in exchange.bindings.items()
            if isinstance(target, wanted) and target.name == destination]


def optional_param(request: Request, name: str) -> str | None:
    """A path parameter of the routes that have it (`/api/queues/{vhost}`), else None."""
    value = request.path_params.get(name)
    return None if value is None else urllib.parse.unquote(value)


@contextlib.contextmanager
def model_errors() -> Iterator[None]:
    """The broker model's AMQP errors as RabbitMQ's API answers them (400 with the text,
    404 for a missing object)."""
    try:
        yield
    except errors.AMQPError as exc:
        detail = exc.reply_text.partition(" - ")[2]
        if exc.reply_code == errors.NOT_FOUND:
            raise Refused(404, "not_found", detail) from None
        raise bad_request(detail) from None


def flag(request: Request, name: str) -> bool:
    """A boolean query parameter (`?disable_stats=true`)."""
    return request.query_params.get(name) == "true"


def listing(request: Request, items: list[dict[str, Any]]) -> Response:
    """A list as RabbitMQ serves it: `name` (substring, or regex with `use_regex`),
    `sort`/`sort_reverse`, `columns`, pagination with `page`/`page_size`, and without
    statistics with `disable_stats`."""
    query = request.query_params
    if flag(request, "disable_stats"):
        items = [shapes.without_stats(i) for i in items]
    total = len(items)
    name = query.get("name")
    if name:
        if query.get("use_regex") == "true":
            try:
                pattern = re.compile(name)
            except re.error:
                raise bad_request(f"invalid regular expression '{name}'") from None
            items = [i for i in items if pattern.search(str(i.get("name", "")))]
        else:
            items = [i for i in items if name in str(i.get("name", ""))]
    sort = query.get("sort")
    if sort:
        items = sorted(items, key=lambda i: (str(type(i.get(sort))), i.get(sort) or 0),
                       reverse=query.get("sort_reverse") == "true")
    columns = query.get("columns")
    if columns:
        keys = [c.strip() for c in columns.split(",")]
        items = [{k: i[k] for k in keys if k in i} for i in items]
    page = query.get("page")
    if page is None:
        return JSONResponse(items)
    try:
        number, size = int(page), int(query.get("page_size", "100"))
    except ValueError:
        raise bad_request("invalid_pagination_parameters") from None
    if number < 1 or size < 1 or size > MAX_PAGE_SIZE:
        raise Refused(400, "bad_request", "invalid_pagination_parameters")
    count = max(1, -(-len(items) // size))
    if number > count:
        raise bad_request(f"Page out of range, page: {number} page size: {size}, "
                          f"len: {len(items)}")
    shown = items[(number - 1) * size:number * size]
    return JSONResponse({"filtered_count": len(items), "item_count": len(shown),
                         "items": shown, "page": number, "page_count": count,
                         "page_size": size, "total_count": total})
