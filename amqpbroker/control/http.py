"""The test control over HTTP, as JSON under `/api/test/`: the inspection, waits, clock,
vhosts and faults of `controller`, for test suites in any language that run the broker as
a subprocess (`serve --control-port P`, or `--test-control` on the management port).

It asks for no login: it is for test brokers on loopback only. Objects are named in the
query string (`?vhost=/&queue=jobs`), so names need only URL escaping. A wait that times
out answers 408 with what the broker holds; an unknown object 404; bad input 400.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import math
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp

from amqpbroker.config import Settings
from amqpbroker.control import inspection
from amqpbroker.control.controller import Controller, NotRunning
from amqpbroker.control.inspection import MessageInfo, Missing, Wait
from amqpbroker.definitions import jsonable
from amqpbroker.transport.http import HttpListener

log = logging.getLogger("amqpbroker.control")

POLL = 0.005
MAX_TIMEOUT = 300.0


class Refused(Exception):
    def __init__(self, status: int, error: str, reason: str) -> None:
        super().__init__(reason)
        self.response = JSONResponse({"error": error, "reason": reason}, status)


def shape(value: Any) -> Any:
    """A snapshot as JSON: message bodies as text when UTF-8, else base64."""
    if isinstance(value, list):
        return [shape(item) for item in value]
    if isinstance(value, MessageInfo):
        row = dataclasses.asdict(value)
        try:
            row["body"], row["body_encoding"] = value.body.decode("utf-8"), "string"
        except UnicodeDecodeError:
            row["body"] = base64.b64encode(value.body).decode("ascii")
            row["body_encoding"] = "base64"
        return jsonable(row)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        row = jsonable(dataclasses.asdict(value))
        if isinstance(value, inspection.QueueInfo):
            row["depth"] = value.depth
        return row
    return jsonable(value)


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise Refused(400, "bad_request", f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise Refused(400, "bad_request", "the body must be a JSON object")
    return body


def _number(body: dict[str, Any], key: str, default: float | None = None) -> float:
    value = body.get(key, default)
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not math.isfinite(value) or value < 0):
        raise Refused(400, "bad_request", f"'{key}' must be a finite number of at least 0")
    return float(value)


def _text(body: dict[str, Any], key: str, default: str | None = None) -> str:
    value = body.get(key, default)
    if not isinstance(value, str):
        raise Refused(400, "bad_request", f"'{key}' must be a string")
    return value


def _matcher(body: dict[str, Any]) -> Callable[[MessageInfo], bool] | None:
    """A message predicate from the request: `body` (exact text) and `routing_key`."""
    text = body.get("body")
    key = body.get("routing_key")
    if text is None and key is None:
        return None
    return lambda m: (text is None or m.text == text) and (key is None or m.routing_key == key)


def _condition(body: dict[str, Any]) -> Wait:
    kind, vhost = _text(body, "condition"), _text(body, "vhost", "/")
    if kind == "connections":
        return inspection.connection_count(vhost, int(_number(body, "count", 1)))
    queue = _text(body, "queue")
    if kind == "queue_depth":
        return inspection.queue_depth(vhost, queue, int(_number(body, "depth")))
    if kind == "message":
        return inspection.message_in(vhost, queue, _matcher(body))
    if kind == "acked":
        return inspection.all_acked(vhost, queue)
    if kind == "consumers":
        return inspection.consumer_count(vhost, queue, int(_number(body, "count", 1)))
    raise Refused(400, "bad_request", f"unknown condition '{kind}' (queue_depth, message, "
                                      "acked, consumers, connections)")


class ControlApi:
    def __init__(self, controller: Controller, *, restart_waits: bool) -> None:
        self.controller = controller
        self.restart_waits = restart_waits

    def _read(self, fn: Callable[..., Any], argument: str | None = None, *,
              required: bool = True) -> Callable[[Request], Any]:
        """A GET of one inspection function of a vhost (`?vhost=`, default `/`), with
        one more argument from the query if it takes one."""
        def handler(request: Request) -> Any:
            query = request.query_params
            args = []
            if argument is not None:
                value = query.get(argument)
                if value is None and required:
                    raise Refused(400, "bad_request", f"'{argument}' is required")
                args.append(value)
            return fn(self.controller.server, query.get("vhost", "/"), *args)
        return handler

    async def wait(self, request: Request) -> Any:
        body = await _body(request)
        condition = _condition(body)
        timeout = min(_number(body, "timeout", 5.0), MAX_TIMEOUT)
        deadline = anyio.current_time() + timeout
        while (result := condition.check(self.controller.server)) is None:
            if anyio.current_time() >= deadline:
                raise Refused(408, "timeout", f"timed out after {timeout}s waiting for "
                              f"{condition.what}: "
                              f"{condition.explain(self.controller.server)}")
            await anyio.sleep(POLL)
        return result

    def about(self, request: Request) -> Any:
        """Where the broker listens and how far its clock was moved on."""
        settings = self.controller.settings
        return {"url": f"amqp://{settings.default_user}:{settings.default_pass}@"
                       f"{settings.host}:{settings.port}/",
                "host": settings.host, "port": settings.port,
                "clock_offset": self.controller.clock.offset}

    def confirms(self, request: Request) -> Any:
        vhost = request.query_params.get("vhost", "/")
        return {"outstanding": inspection.confirms_outstanding(self.controller.server, vhost)}

    async def clock(self, request: Request) -> Any:
        seconds = _number(await _body(request), "seconds", 0.0)
        return {"offset": self.controller.advance_clock(seconds)}

    async def vhosts(self, request: Request) -> Any:
        controller = self.controller
        if request.method == "DELETE":
            name = request.query_params.get("name")
            if not name or name not in controller.server.broker.vhosts:
                raise Missing(f"no vhost '{name}'")
            controller.delete_vhost(name)
            return None
        name = _text(await _body(request), "name", "") or None
        return {"name": controller.create_vhost(name)}

    async def close(self, request: Request) -> Any:
        body = await _body(request)
        self.controller.close_connection(
            _text(body, "name"), int(_number(body, "code", 320)),
            _text(body, "text", "closed by the test"))

    async def drop(self, request: Request) -> Any:
        self.controller.drop_connection(_text(await _body(request), "name"))

    async def refuse(self, request: Request) -> Any:
        self.controller.refuse_connections(_number(await _body(request), "seconds"))

    def block(self, request: Request) -> Any:
        self.controller.block_publishers()

    def unblock(self, request: Request) -> Any:
        self.controller.unblock_publishers()

    async def restart(self, request: Request) -> Any:
        """Restart; on the management port (which restarts too) answer 202 at once."""
        if self.restart_waits:
            await self.controller.restart()
            return None
        async def after_the_answer() -> None:  # the restart closes this request's port
            self.controller.spawn(self.controller.restart)
        return Response(status_code=202, background=BackgroundTask(after_the_answer))

    def app(self) -> ASGIApp:
        def route(path: str, handler: Callable[[Request], Any], *methods: str) -> Route:
            return Route(path, _answer(handler), methods=list(methods or ("GET",)))
        read = self._read
        routes = [
            route("/broker", self.about),
            route("/queues", read(inspection.queues)),
            route("/queue", read(inspection.queue, "queue")),
            route("/messages", read(inspection.messages, "queue")),
            route("/unacked", read(inspection.unacked_messages, "queue")),
            route("/consumers", read(inspection.consumers, "queue", required=False)),
            route("/exchanges", read(inspection.exchanges)),
            route("/bindings", read(inspection.bindings)),
            route("/connections", read(inspection.connections)),
            route("/dead-lettered", read(inspection.dead_lettered, "reason", required=False)),
            route("/confirms", self.confirms),
            route("/wait", self.wait, "POST"),
            route("/clock/advance", self.clock, "POST"),
            route("/vhosts", self.vhosts, "POST", "DELETE"),
            route("/connections/close", self.close, "POST"),
            route("/connections/drop", self.drop, "POST"),
            route("/connections/refuse", self.refuse, "POST"),
            route("/publishers/block", self.block, "POST"),
            route("/publishers/unblock", self.unblock, "POST"),
            route("/restart", self.restart, "POST"),
        ]
        return Starlette(routes=routes)


def _answer(handler: Callable[[Request], Any]) -> Callable[[Request], Awaitable[Response]]:
    """A handler's result as JSON (None: 204), and its refusals as RabbitMQ-shaped errors."""
    async def endpoint(request: Request) -> Response:
        try:
            result = handler(request)
            if isinstance(result, Awaitable):
                result = await result
        except Refused as exc:
            return exc.response
        except Missing as exc:
            return JSONResponse({"error": "not_found", "reason": str(exc)}, 404)
        except NotRunning as exc:  # mid-restart: ask again
            return JSONResponse({"error": "unavailable", "reason": str(exc)}, 503)
        except (TypeError, ValueError) as exc:
            return JSONResponse({"error": "bad_request", "reason": str(exc)}, 400)
        if isinstance(result, Response):
            return result
        if result is None:
            return Response(status_code=204)
        return JSONResponse(shape(result))
    return endpoint


def control_app(controller: Controller, *, restart_waits: bool) -> ASGIApp:
    """The control routes (relative: mount them at `/api/test`)."""
    return ControlApi(controller, restart_waits=restart_waits).app()


async def serve_controlled(settings: Settings) -> None:
    """Serve a test broker until SIGINT or SIGTERM, with its control on the control port
    and (with `test_control`) on the management port, under `/api/test`. A failure to
    start (a port in use, an unusable data directory) is raised as itself, as a plain
    `serve` raises it, not inside the task groups' exception groups."""
    try:
        await _serve_controlled(settings)
    except BaseExceptionGroup as group:
        raise _sole(group) from None


def _sole(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one error inside nested single-error groups, or the group itself."""
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


async def _serve_controlled(settings: Settings) -> None:
    controller = Controller(settings)
    if settings.test_control:
        controller.control_app = control_app(controller, restart_waits=False)
    listener = None
    if settings.control_port:
        listener = HttpListener(Starlette(routes=[Mount("/api/test", control_app(
            controller, restart_waits=True))]), settings.host, settings.control_port)
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with anyio.create_task_group() as tasks:
            await tasks.start(controller.run)
            log.info("amqpbroker (test control) listening on amqp://%s:%d",
                     settings.host, controller.settings.port)
            if listener is not None:
                await tasks.start(listener.serve)
                log.info("test control on http://%s:%d/api/test/", settings.host,
                         listener.port)
            async for signum in signals:
                log.info("received %s, shutting down", signal.Signals(signum).name)
                break
            if listener is not None:
                listener.close()
            controller.stop()
