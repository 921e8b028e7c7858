"""Restart time with N persistent messages stored: fill a durable queue, stop the broker
with SIGKILL, and time a fresh start on the same data directory until it accepts
connections (recovery happens before the listener opens).

    python -m bench.restart --messages 1000000
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import time

import pika

from bench.brokers import free_port, wait_for_port

QUEUE = "restart-bench"


def start(port: int, data_dir: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "amqpbroker", "serve", "--port", str(port),
                             "--data-dir", data_dir, "--log-level", "warning",
                             "--management-port", "0", "--prometheus-port", "0",
                             "--mqtt-port", "0", "--stomp-port", "0"])


def fill(port: int, messages: int) -> None:
    connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
    channel = connection.channel()
    channel.queue_declare(QUEUE, durable=True)
    properties = pika.BasicProperties(delivery_mode=2)
    body = b"x" * 16
    for _ in range(messages):
        channel.basic_publish("", QUEUE, body, properties)
    channel.confirm_delivery()
    channel.basic_publish("", QUEUE, body, properties)  # confirmed: everything before is too
    connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--data-dir", default="bench/data-restart")
    args = parser.parse_args()
    shutil.rmtree(args.data_dir, ignore_errors=True)
    port = free_port()
    broker = start(port, args.data_dir)
    wait_for_port(port, 10)
    started = time.monotonic()
    fill(port, args.messages)
    fill_seconds = time.monotonic() - started
    broker.send_signal(signal.SIGKILL)
    broker.wait()
    started = time.monotonic()
    broker = start(port, args.data_dir)
    wait_for_port(port, 3600)
    restart_seconds = time.monotonic() - started
    connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
    count = connection.channel().queue_declare(QUEUE, passive=True).method.message_count
    connection.close()
    broker.terminate()
    broker.wait()
    shutil.rmtree(args.data_dir, ignore_errors=True)
    print(json.dumps({"messages_stored": count, "fill_seconds": round(fill_seconds, 1),
                      "restart_seconds": round(restart_seconds, 2)}, indent=2))


if __name__ == "__main__":
    main()
