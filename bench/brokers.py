"""The brokers under test: ours started fresh as a subprocess, RabbitMQ given by a URL (its
MQTT and STOMP ports by environment variables), and what /proc says about them (CPU
seconds, resident memory)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

_TICK = os.sysconf("SC_CLK_TCK")
DATA_ROOT = Path(__file__).resolve().parent / "data"


class Unavailable(Exception):
    """The broker does not offer what a scenario needs (the run is skipped, not failed)."""


@dataclass
class Target:
    """One broker to drive: its name in the report, its AMQP URL, its MQTT and STOMP ports
    (on the URL's host) and, when it runs on this machine, the pid whose CPU time and RSS
    the report reads from /proc."""

    name: str
    url: str
    pid: int | None
    mqtt_port: int | None = None
    stomp_port: int | None = None

    @property
    def host(self) -> str:
        return urlparse(self.url).hostname or "127.0.0.1"

    def endpoint(self, protocol: str) -> tuple[str, int]:
        """(host, port) of the broker's "mqtt" or "stomp" listener; Unavailable when
        nothing answers there."""
        port = self.mqtt_port if protocol == "mqtt" else self.stomp_port
        if not port:
            raise Unavailable(f"{self.name} has no {protocol.upper()} port")
        try:
            socket.create_connection((self.host, port), timeout=2).close()
        except OSError as exc:
            raise Unavailable(
                f"nothing answers on {self.name}'s {protocol.upper()} port {self.host}:{port}"
                f" ({exc.strerror or exc}); RabbitMQ needs `rabbitmq-plugins enable "
                f"rabbitmq_{protocol}`") from None
        return self.host, port


def rabbitmq_target(url: str, pid: int | None) -> Target:
    """RabbitMQ at `url`; MQTT and STOMP on $RABBITMQ_MQTT_PORT (1883) and
    $RABBITMQ_STOMP_PORT (61613)."""
    return Target("rabbitmq", url, pid, int(os.environ.get("RABBITMQ_MQTT_PORT", "1883")),
                  int(os.environ.get("RABBITMQ_STOMP_PORT", "61613")))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads and its live child
    processes (our broker's fsync helper, RabbitMQ's port programs) included."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    total = (int(fields[11]) + int(fields[12])) / _TICK
    for child in _children(pid):
        with contextlib.suppress(OSError):  # it exited meanwhile
            total += cpu_seconds(child)
    return total


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as children:
                found += map(int, children.read().split())
    return found


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def find_rabbitmq_pid(url: str) -> int | None:
    """The beam.smp running RabbitMQ, when the URL points at this machine and exactly one
    RabbitMQ node runs here; None otherwise (CPU and memory are then reported as n/a)."""
    host = urlparse(url).hostname or "localhost"
    local = {"localhost", "127.0.0.1", "::1", socket.gethostname()}
    if host not in local:
        return None
    try:
        out = subprocess.run(["pgrep", "-f", "beam.smp"], capture_output=True, text=True,
                             check=False).stdout
    except FileNotFoundError:
        return None
    pids = []
    for word in out.split():
        try:
            with open(f"/proc/{word}/cmdline", "rb") as cmdline:
                if b"rabbit" in cmdline.read():
                    pids.append(int(word))
        except OSError:
            continue
    return pids[0] if len(pids) == 1 else None


@contextlib.contextmanager
def our_broker(extra_args: list[str] | None = None) -> Iterator[Target]:
    """Start `python -m amqpbroker serve` fresh on free ports (AMQP, MQTT, STOMP) with a
    fresh data directory (under bench/data/, on the same filesystem as the checkout), stop
    it afterwards."""
    data_dir = DATA_ROOT / ("run-" + uuid.uuid4().hex[:8])
    data_dir.mkdir(parents=True)
    log_path = data_dir.parent / (data_dir.name + ".log")
    port, mqtt_port, stomp_port = free_port(), free_port(), free_port()
    command = [sys.executable, "-m", "amqpbroker", "serve", "--port", str(port),
               "--mqtt-port", str(mqtt_port), "--stomp-port", str(stomp_port),
               "--log-level", "warning", "--data-dir", str(data_dir), "--management-port", "0",
               "--prometheus-port", "0", *(extra_args or [])]
    with open(log_path, "wb") as log:
        broker = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        try:
            for listener in (port, mqtt_port, stomp_port):
                wait_for_port(listener, 20)
        except OSError as exc:
            raise RuntimeError("our broker did not start:\n"
                               + log_path.read_text()[-2000:]) from exc
        time.sleep(0.3)  # let start-up work finish before a baseline is read
        yield Target("ours", f"amqp://guest:guest@127.0.0.1:{port}/", broker.pid, mqtt_port,
                     stomp_port)
        if broker.poll() is not None:
            raise RuntimeError("our broker exited:\n" + log_path.read_text()[-2000:])
    finally:
        broker.terminate()
        try:
            broker.wait(15)
        except subprocess.TimeoutExpired:
            broker.kill()
            broker.wait()
        shutil.rmtree(data_dir, ignore_errors=True)
        warnings = log_path.read_text(errors="replace").strip()
        log_path.unlink(missing_ok=True)
        if warnings:
            print("  [our broker logged]\n    " + "\n    ".join(warnings.splitlines()[-10:]),
                  file=sys.stderr)
