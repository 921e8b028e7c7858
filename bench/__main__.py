"""1 producer -> 1 queue -> 1 consumer with aio-pika.

Scenarios: `transient` (16-byte transient messages, autoack) and `persistent` (durable
queue, persistent messages, publisher confirms with a window of 100, manual ack with
prefetch 100; every confirm after its fsync). The broker runs in its own process;
producer and consumer run in two more, so the load generator shares no interpreter with
the broker. Prints the delivered rate and the broker's CPU time per message (from
/proc), as JSON too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import time

import aio_pika

QUEUE = "bench"
WINDOW = 100


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _consume(url: str, count: int, persistent: bool, ready: multiprocessing.Event,
                   result: multiprocessing.Queue) -> None:
    connection = await aio_pika.connect(url)
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=100)
    queue = await channel.declare_queue(QUEUE, durable=persistent)
    done = asyncio.Event()
    received = 0
    started = 0.0

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        nonlocal received, started
        if received == 0:
            started = time.perf_counter()
        received += 1
        if persistent:
            await message.ack()
        if received == count:
            done.set()

    await queue.consume(on_message, no_ack=not persistent)
    ready.set()
    await done.wait()
    result.put((count - 1) / (time.perf_counter() - started))
    await connection.close()


async def _produce(url: str, count: int, body: bytes, persistent: bool) -> None:
    connection = await aio_pika.connect(url)
    channel = await connection.channel(publisher_confirms=persistent)
    exchange = channel.default_exchange
    mode = aio_pika.DeliveryMode.PERSISTENT if persistent else aio_pika.DeliveryMode.NOT_PERSISTENT
    if not persistent:
        for _ in range(count):
            await exchange.publish(aio_pika.Message(body, delivery_mode=mode), routing_key=QUEUE)
    else:
        window = asyncio.Semaphore(WINDOW)

        async def one() -> None:
            try:
                await exchange.publish(aio_pika.Message(body, delivery_mode=mode),
                                       routing_key=QUEUE)
            finally:
                window.release()

        tasks = []
        for _ in range(count):
            await window.acquire()
            tasks.append(asyncio.ensure_future(one()))
        await asyncio.gather(*tasks)
    await connection.close()


def consumer(url: str, count: int, persistent: bool, ready: multiprocessing.Event,
             result: multiprocessing.Queue) -> None:
    asyncio.run(_consume(url, count, persistent, ready, result))


def producer(url: str, count: int, size: int, persistent: bool) -> None:
    asyncio.run(_produce(url, count, b"x" * size, persistent))


def run(scenario: str, count: int, size: int, data_dir: str) -> dict[str, object]:
    persistent = scenario == "persistent"
    port = free_port()
    command = [sys.executable, "-m", "amqpbroker", "serve", "--port", str(port),
               "--log-level", "warning"]
    if persistent:
        shutil.rmtree(data_dir, ignore_errors=True)
        command += ["--data-dir", data_dir]
    broker = subprocess.Popen(command)
    try:
        wait_for_port(port, 10)
        url = f"amqp://guest:guest@127.0.0.1:{port}/"
        ready, result = multiprocessing.Event(), multiprocessing.Queue()
        cons = multiprocessing.Process(target=consumer,
                                       args=(url, count, persistent, ready, result))
        cons.start()
        ready.wait(30)
        cpu_before = cpu_seconds(broker.pid)
        prod = multiprocessing.Process(target=producer, args=(url, count, size, persistent))
        prod.start()
        rate = result.get(timeout=600)
        cpu = cpu_seconds(broker.pid) - cpu_before
        prod.join(60)
        cons.join(60)
        return {"scenario": scenario, "messages": count, "body_bytes": size,
                "delivered_per_s": round(rate),
                "broker_cpu_us_per_msg": round(cpu / count * 1e6, 1)}
    finally:
        broker.terminate()
        broker.wait(10)
        if persistent:
            shutil.rmtree(data_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenario", action="append", choices=["transient", "persistent"])
    parser.add_argument("--count", type=int, default=50_000)
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--data-dir", default="bench/data")
    parser.add_argument("--json", default="bench/results.json")
    args = parser.parse_args()
    results = [run(scenario, args.count, args.size, args.data_dir)
               for scenario in args.scenario or ["transient", "persistent"]]
    print(json.dumps(results, indent=2))
    with open(args.json, "w") as out:
        json.dump(results, out, indent=2)


if __name__ == "__main__":
    main()
