"""Brokers in other processes: a free port, the `amqpbroker serve` command line, waiting
for a port to listen and polling for a condition with a deadline."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

from amqpbroker.testing import wait_for

__all__ = ["free_port", "serve_command", "wait_for", "wait_for_port"]


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_command(port: int, data_dir: Path | str | None = None, *options: str) -> list[str]:
    """`python -m amqpbroker serve` on `port` (and `data_dir`), logging warnings only."""
    command = [sys.executable, "-m", "amqpbroker", "serve", "--port", str(port),
               "--log-level", "warning"]
    if data_dir is not None:
        command += ["--data-dir", str(data_dir)]
    return command + list(options)


def wait_for_port(port: int, deadline: float) -> float:
    """Poll until the port accepts a connection; return the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return time.monotonic() - start
        except OSError:
            time.sleep(0.01)
    raise AssertionError(f"nothing listening on {port} after {deadline}s")
