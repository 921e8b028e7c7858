"""Helpers for the durability tests: the broker as a real subprocess on a data directory,
SIGKILL from another thread, deadline polling, fast confirmed publishing and draining."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import pika
import pika.exceptions
from support.processes import free_port, serve_command

STARTUP_DEADLINE = 15.0
STOP_DEADLINE = 15.0
CLIENT_TIMEOUT = 10.0
POLL_INTERVAL = 0.01
STORE_FILE = "amqpbroker.sqlite3"

# What a client sees when the broker it talks to is SIGKILLed under it.
CONNECTION_LOST = (pika.exceptions.AMQPError, OSError, EOFError)


class BrokerProcess:
    """`amqpbroker serve --data-dir DIR` as a subprocess; each start gets a fresh port and
    appends its stderr to `log_path` (a file, so a chatty broker never blocks on a pipe)."""

    def __init__(self, data_dir: Path, log_path: Path, *options: str) -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        self.options = options  # more `serve` options
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.starts = 0

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    @property
    def store_path(self) -> Path:
        return self.data_dir / STORE_FILE

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self) -> BrokerProcess:
        """Start and wait until the port accepts connections (the broker has recovered its
        store by then: it listens only after the recovery). Retries on a port race."""
        assert not self.running, "the broker is already running"
        for _attempt in range(3):
            self.port = free_port()
            mark = len(self.log())
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    [*serve_command(self.port, self.data_dir), *self.options],
                    stdout=subprocess.DEVNULL, stderr=log)
            self.starts += 1
            if self._wait_ready():
                return self
            if "address already in use" not in self.log()[mark:]:
                raise AssertionError(
                    f"the broker exited with {self.proc.returncode} at start:\n"
                    f"{self.log()[mark:]}")
        raise AssertionError("no free port for the broker after 3 attempts")

    def _wait_ready(self) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + STARTUP_DEADLINE
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return True
            except OSError:
                time.sleep(POLL_INTERVAL)
        self.proc.kill()
        self.proc.wait(timeout=STOP_DEADLINE)
        raise AssertionError(f"nothing listening on {self.port} after {STARTUP_DEADLINE}s:\n"
                             f"{self.log()}")

    def kill(self) -> None:
        """SIGKILL: no chance to write anything more."""
        assert self.proc is not None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=STOP_DEADLINE)

    def stop(self) -> int:
        """SIGTERM (graceful); returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=STOP_DEADLINE)

    def restart(self, how: str = "kill") -> BrokerProcess:
        if how == "kill":
            self.kill()
        else:
            assert self.stop() == 0, f"graceful stop failed:\n{self.log()}"
        return self.start()

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=STOP_DEADLINE)


class Killer:
    """SIGKILLs the broker from its own thread as soon as `trigger` is set, so whatever the
    test thread is doing (publishing, declaring, acking) goes on until the very end."""

    def __init__(self, broker: BrokerProcess) -> None:
        assert broker.proc is not None
        self.pid = broker.proc.pid
        self.trigger = threading.Event()
        self.killed = threading.Event()
        self._cancelled = False
        self._thread = threading.Thread(target=self._run, name="broker-killer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        if self.trigger.wait(timeout=60) and not self._cancelled:
            os.kill(self.pid, signal.SIGKILL)
            self.killed.set()

    def join(self) -> None:
        """Wait for the kill if it was triggered; otherwise call it off."""
        if not self.trigger.is_set():
            self._cancelled = True
            self.trigger.set()
        self._thread.join(timeout=STOP_DEADLINE)


# --- clients ---------------------------------------------------------------------------------


def connect(broker: BrokerProcess) -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", broker.port, "/", pika.PlainCredentials("guest", "guest"),
        connection_attempts=1, socket_timeout=CLIENT_TIMEOUT,
        blocked_connection_timeout=CLIENT_TIMEOUT))


def body_of(seq: int) -> bytes:
    return b"msg-%08d" % seq


def seq_of(body: bytes) -> int:
    assert body.startswith(b"msg-"), f"unknown message body {body!r}"
    return int(body[4:])


@dataclass
class PublishResult:
    attempted: list[int] = field(default_factory=list)  # publish handed to the client
    confirmed: set[int] = field(default_factory=set)  # basic.ack received
    nacked: set[int] = field(default_factory=set)
    failed: set[int] = field(default_factory=set)  # no answer (connection lost)


async def _publish(url: str, queue: str, seqs: range, window: int,
                   on_confirm: Callable[[int], None] | None) -> PublishResult:
    result = PublishResult()
    connection = await aio_pika.connect(url, timeout=CLIENT_TIMEOUT)
    try:
        channel = await connection.channel(publisher_confirms=True)
        await channel.declare_queue(queue, durable=True)
        exchange = channel.default_exchange
        slots = asyncio.Semaphore(window)
        lost = asyncio.Event()

        async def one(seq: int) -> None:
            try:
                await exchange.publish(
                    aio_pika.Message(body_of(seq),
                                     delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                    routing_key=queue, timeout=CLIENT_TIMEOUT)
            except aio_pika.exceptions.DeliveryError:
                result.nacked.add(seq)
            except Exception:
                result.failed.add(seq)
                lost.set()
            else:
                result.confirmed.add(seq)
                if on_confirm is not None:
                    on_confirm(len(result.confirmed))
            finally:
                slots.release()

        tasks = []
        for seq in seqs:
            await slots.acquire()
            if lost.is_set() or connection.is_closed:
                slots.release()
                break
            result.attempted.append(seq)
            tasks.append(asyncio.create_task(one(seq)))
        await asyncio.gather(*tasks)
    finally:
        if not connection.is_closed:
            with contextlib.suppress(Exception):  # the broker may be gone already
                await asyncio.wait_for(connection.close(), CLIENT_TIMEOUT)
    return result


def publish_persistent(broker: BrokerProcess, queue: str, count: int, window: int = 100,
                       on_confirm: Callable[[int], None] | None = None,
                       first: int = 0) -> PublishResult:
    """Publish `count` persistent messages (bodies carry their sequence number, from
    `first` on) to the durable `queue` with publisher confirms, up to `window` unconfirmed
    at a time. Stops early, without raising, when the connection is lost."""
    seqs = range(first, first + count)
    return asyncio.run(_publish(broker.url, queue, seqs, window, on_confirm))


@dataclass
class Drained:
    seqs: list[int]
    redelivered: list[bool]
    left: int  # ready messages after the drain


def drain(broker: BrokerProcess, queue: str, timeout: float = 15.0) -> Drained:
    """Consume (auto-ack) everything ready in `queue`, in delivery order."""
    connection = connect(broker)
    try:
        channel = connection.channel()
        expected = channel.queue_declare(queue, passive=True).method.message_count
        channel.basic_qos(prefetch_count=1000)
        seqs: list[int] = []
        redelivered: list[bool] = []
        deadline = time.monotonic() + timeout
        if expected:
            for method, _props, body in channel.consume(queue, auto_ack=True,
                                                        inactivity_timeout=0.05):
                if method is not None:
                    seqs.append(seq_of(body))
                    redelivered.append(method.redelivered)
                if len(seqs) >= expected:
                    break
                if time.monotonic() >= deadline:
                    raise AssertionError(f"{queue}: got {len(seqs)} of {expected} messages "
                                         f"within {timeout}s")
            channel.cancel()
        left = channel.queue_declare(queue, passive=True).method.message_count
        return Drained(seqs, redelivered, left)
    finally:
        connection.close()


def queue_exists(channel_factory: Callable[[], Any], name: str) -> bool:
    """Passive declare on a fresh channel: True when it exists, False on 404."""
    channel = channel_factory()
    try:
        channel.queue_declare(name, passive=True)
    except pika.exceptions.ChannelClosedByBroker as closed:
        assert closed.reply_code == 404, closed
        return False
    channel.close()
    return True


def exchange_exists(channel_factory: Callable[[], Any], name: str) -> bool:
    channel = channel_factory()
    try:
        channel.exchange_declare(name, passive=True)
    except pika.exceptions.ChannelClosedByBroker as closed:
        assert closed.reply_code == 404, closed
        return False
    channel.close()
    return True


def assert_no_traceback(broker: BrokerProcess) -> None:
    log = broker.log()
    assert "Traceback" not in log, f"the broker logged a traceback:\n{log}"
