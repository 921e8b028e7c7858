"""1 producer -> 1 queue -> 1 consumer with aio-pika, 16-byte transient messages.

The broker runs in its own process; producer and consumer run in two more, so the
load generator shares no interpreter with the broker. Prints the delivered rate and
the broker's CPU time per message (from /proc), as JSON too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import time

import aio_pika

QUEUE = "bench"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _consume(url: str, count: int, ready: multiprocessing.Event,
                   result: multiprocessing.Queue) -> None:
    connection = await aio_pika.connect(url)
    channel = await connection.channel()
    queue = await channel.declare_queue(QUEUE)
    done = asyncio.Event()
    received = 0
    started = 0.0

    def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        nonlocal received, started
        if received == 0:
            started = time.perf_counter()
        received += 1
        if received == count:
            done.set()

    await queue.consume(on_message, no_ack=True)
    ready.set()
    await done.wait()
    result.put((count - 1) / (time.perf_counter() - started))
    await connection.close()


async def _produce(url: str, count: int, body: bytes) -> None:
    connection = await aio_pika.connect(url)
    channel = await connection.channel(publisher_confirms=False)
    exchange = channel.default_exchange
    for _ in range(count):
        await exchange.publish(aio_pika.Message(body), routing_key=QUEUE)
    await connection.close()


def consumer(url: str, count: int, ready: multiprocessing.Event,
             result: multiprocessing.Queue) -> None:
    asyncio.run(_consume(url, count, ready, result))


def producer(url: str, count: int, size: int) -> None:
    asyncio.run(_produce(url, count, b"x" * size))


def run(count: int, size: int) -> dict[str, float]:
    port = free_port()
    broker = subprocess.Popen([sys.executable, "-m", "amqpbroker", "serve", "--port", str(port),
                               "--log-level", "warning"])
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        url = f"amqp://guest:guest@127.0.0.1:{port}/"
        ready, result = multiprocessing.Event(), multiprocessing.Queue()
        cons = multiprocessing.Process(target=consumer, args=(url, count, ready, result))
        cons.start()
        ready.wait(30)
        cpu_before = cpu_seconds(broker.pid)
        prod = multiprocessing.Process(target=producer, args=(url, count, size))
        prod.start()
        rate = result.get(timeout=600)
        cpu = cpu_seconds(broker.pid) - cpu_before
        prod.join(60)
        cons.join(60)
        return {"messages": count, "body_bytes": size, "delivered_per_s": round(rate),
                "broker_cpu_us_per_msg": round(cpu / count * 1e6, 1)}
    finally:
        broker.terminate()
        broker.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--json", default="bench/results.json")
    args = parser.parse_args()
    results = run(args.count, args.size)
    print(json.dumps(results, indent=2))
    with open(args.json, "w") as out:
        json.dump(results, out, indent=2)


if __name__ == "__main__":
    main()
