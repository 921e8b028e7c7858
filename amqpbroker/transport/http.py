"""HTTP listeners in the broker's own event loop: uvicorn serving an ASGI app (the
management API, the Prometheus metrics, a protocol over WebSocket) on a socket bound before
serving, so that a port in use stops the start like the AMQP port does. The broker handles
the signals itself."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import anyio
import uvicorn
from anyio.abc import TaskStatus
from starlette.types import ASGIApp


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """SIGINT and SIGTERM are the broker's: uvicorn leaves them alone."""
        yield


class HttpListener:
    """One ASGI app on one TCP port; `ws_max_size`: the largest WebSocket message."""

    def __init__(self, app: ASGIApp, host: str, port: int, *,
                 ws_max_size: int = 16 * 1024 * 1024) -> None:
        self.sock = socket.create_server((host, port), reuse_port=False)
        self.port: int = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                                ws_max_size=ws_max_size)
        self.server = _Server(config)
        self.stopped = anyio.Event()  # uvicorn closed its connections and returned

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
                    ) -> None:
        task_status.started()
        try:
            await self.server.serve(sockets=[self.sock])
        finally:
            self.stopped.set()

    def close(self) -> None:
        """Stop listening at once (the port is free again on return), then wind down."""
        self.server.should_exit = True
        for server in getattr(self.server, "servers", ()):
            server.close()
        self.sock.close()
