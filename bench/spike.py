"""A traffic spike and what it leaves behind: N persistent messages (1 KiB) published into
a durable queue faster than a slow consumer takes them, then drained and the queue
deleted. Reports peak and final broker RSS, peak and final disk, disk per held message,
and (ours, or RabbitMQ with --rabbitmq-restart) the time and RSS of a restart after
kill -9 with the backlog stored.

    python -m bench.spike                               # ours
    RABBITMQ_URL=amqp://guest:guest@127.0.0.1:5672/ python -m bench.spike
        # and RabbitMQ running on this machine (data in --rabbitmq-data), side by side
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pika

from bench.brokers import find_rabbitmq_pid, free_port, rss_bytes, wait_for_port

QUEUE = "spike-bench"
SAMPLE = 0.2


def disk_bytes(path: str) -> int:
    """Bytes allocated on disk under `path` (what `du` counts)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except FileNotFoundError:
                continue
    return total


@dataclass
class Peaks:
    """Peak RSS and disk, sampled in the background."""

    pid: int
    data_dir: str
    rss: int = 0
    disk: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            self.sample()
            self.stop.wait(SAMPLE)

    def sample(self) -> tuple[int, int]:
        rss, disk = rss_bytes(self.pid), disk_bytes(self.data_dir)
        self.rss, self.disk = max(self.rss, rss), max(self.disk, disk)
        return rss, disk


def _connect(url: str) -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.URLParameters(url))


def publish(url: str, messages: int, body: bytes) -> None:
    connection = _connect(url)
    channel = connection.channel()
    channel.queue_declare(QUEUE, durable=True)
    properties = pika.BasicProperties(delivery_mode=2)
    for _ in range(messages - 1):
        channel.basic_publish("", QUEUE, body, properties)
    channel.confirm_delivery()
    channel.basic_publish("", QUEUE, body, properties)  # confirmed: so is everything before
    connection.close()


def consume(url: str, count: int, rate: float | None) -> None:
    """Take `count` messages, acking each (at most `rate` per second when given)."""
    connection = _connect(url)
    channel = connection.channel()
    channel.basic_qos(prefetch_count=200)
    started = time.monotonic()
    for taken, (method, _props, _body) in enumerate(
            channel.consume(QUEUE, inactivity_timeout=30), start=1):
        if method is None:
            raise RuntimeError(f"no message for 30 s after {taken - 1} of {count}")
        if taken % 100 == 0 or taken == count:
            channel.basic_ack(method.delivery_tag, multiple=True)
        if taken == count:
            break
        if rate is not None and taken % 100 == 0:
            ahead = taken / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
    channel.cancel()
    connection.close()


def queue_depth(url: str) -> int:
    connection = _connect(url)
    count = connection.channel().queue_declare(QUEUE, passive=True).method.message_count
    connection.close()
    return count


def delete_queue(url: str) -> None:
    connection = _connect(url)
    connection.channel().queue_delete(QUEUE)
    connection.close()


def settle(measure: Callable[[], tuple[int, int]], seconds: float) -> tuple[int, int]:
    """RSS and disk once disk stops shrinking (or after `seconds`)."""
    deadline = time.monotonic() + seconds
    last = measure()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = measure()
        if now[1] >= last[1] and now[1] == measure()[1]:
            return now
        last = now
    return last


def spike(url: str, pid: int, data_dir: str, messages: int, slow_rate: float) -> dict[str, float]:
    body = b"x" * 1024
    peaks = Peaks(pid, data_dir)
    baseline_rss, baseline_disk = peaks.sample()
    sampler = threading.Thread(target=peaks.run, daemon=True)
    sampler.start()
    slow = threading.Thread(target=consume, args=(url, messages // 10, slow_rate))
    started = time.monotonic()
    publish(url, 1, body)
    slow.start()
    publish(url, messages - 1, body)
    publish_seconds = time.monotonic() - started
    slow.join()
    held = queue_depth(url)
    held_rss, held_disk = peaks.sample()
    consume(url, held, None)
    delete_queue(url)
    final_rss, final_disk = settle(peaks.sample, 10)
    peaks.stop.set()
    sampler.join()
    return {
        "messages": messages, "publish_msg_per_s": round(messages / publish_seconds),
        "held": held, "baseline_rss_mb": round(baseline_rss / 2**20, 1),
        "held_rss_mb": round(held_rss / 2**20, 1), "peak_rss_mb": round(peaks.rss / 2**20, 1),
        "final_rss_mb": round(final_rss / 2**20, 1),
        "baseline_disk_mb": round(baseline_disk / 2**20, 2),
        "held_disk_mb": round(held_disk / 2**20, 1), "peak_disk_mb": round(peaks.disk / 2**20, 1),
        "final_disk_mb": round(final_disk / 2**20, 2),
        "disk_per_held_message_b": round((held_disk - baseline_disk) / max(held, 1)),
    }


def _ours(port: int, data_dir: str) -> subprocess.Popen[bytes]:
    broker = subprocess.Popen([sys.executable, "-m", "amqpbroker", "serve", "--port",
                               str(port), "--data-dir", data_dir, "--log-level", "warning",
                               "--management-port", "0", "--prometheus-port", "0",
                               "--mqtt-port", "0", "--stomp-port", "0"])
    wait_for_port(port, 60)
    return broker


def restart_after_kill(messages: int, data_dir: str) -> dict[str, float]:
    """Ours: a backlog of `messages`, kill -9, and a restart on the same data directory."""
    shutil.rmtree(data_dir, ignore_errors=True)
    port = free_port()
    url = f"amqp://guest:guest@127.0.0.1:{port}/"
    broker = _ours(port, data_dir)
    publish(url, messages, b"x" * 1024)
    running_rss = rss_bytes(broker.pid)
    broker.send_signal(signal.SIGKILL)
    broker.wait()
    started = time.monotonic()
    broker = _ours(port, data_dir)
    depth = queue_depth(url)
    seconds = time.monotonic() - started
    recovered_rss = rss_bytes(broker.pid)
    broker.terminate()
    broker.wait()
    shutil.rmtree(data_dir, ignore_errors=True)
    return {"recovered": depth, "restart_s": round(seconds, 2),
            "rss_before_kill_mb": round(running_rss / 2**20, 1),
            "rss_after_recovery_mb": round(recovered_rss / 2**20, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--slow-rate", type=float, default=2000.0,
                        help="messages per second the slow consumer takes")
    parser.add_argument("--data-dir", default="bench/data-spike")
    parser.add_argument("--rabbitmq-url", default=os.environ.get("RABBITMQ_URL"))
    parser.add_argument("--rabbitmq-data", default="/var/lib/rabbitmq/mnesia")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    results = [ours(args)]
    if args.rabbitmq_url:
        pid = find_rabbitmq_pid(args.rabbitmq_url)
        if pid is None:
            sys.exit("no RabbitMQ (beam.smp) found on this machine")
        results.append({"broker": "rabbitmq", **spike(args.rabbitmq_url, pid,
                                                      args.rabbitmq_data, args.messages,
                                                      args.slow_rate)})
    print(f"spike: {args.messages} persistent 1 KiB messages, slow consumer at "
          f"{args.slow_rate:g} msg/s, then drained and deleted")
    print(f"{'':28}" + "".join(f"{r['broker']:>12}" for r in results))
    for key in results[0]:
        if key != "broker":
            print(f"{key:28}" + "".join(f"{r.get(key, 'n/a'):>12}" for r in results))
    if args.json:
        with open(args.json, "w") as file:
            json.dump(results, file, indent=2)


def ours(args: argparse.Namespace) -> dict[str, float | str]:
    shutil.rmtree(args.data_dir, ignore_errors=True)
    port = free_port()
    broker = _ours(port, args.data_dir)
    try:
        result: dict[str, float | str] = {"broker": "ours", **spike(
            f"amqp://guest:guest@127.0.0.1:{port}/", broker.pid, args.data_dir,
            args.messages, args.slow_rate)}
    finally:
        broker.terminate()
        broker.wait()
    result.update(restart_after_kill(args.messages, args.data_dir))
    return result


if __name__ == "__main__":
    main()
