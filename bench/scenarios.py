"""The benchmark scenarios. Each takes a broker (`Target`) and the run's sizes, drives it
with generator processes, and returns its metrics as a flat dict.

Rates are measured over a fixed message count after a warm-up, on the consumer side where
messages flow through (delivered, not merely written). CPU per message is the CPU time
the broker process (all threads) and the generator processes spent inside that window,
read from /proc, divided by the messages in it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.amqp import Connection, parse_url
from bench.brokers import Target, rss_bytes
from bench.workers import (
    CTX,
    Workers,
    connections_main,
    consume_main,
    counter,
    fill_main,
    measure,
    mqtt_publish_main,
    mqtt_subscribe_main,
    paced_main,
    produce_main,
    snapshot,
    stomp_send_main,
    stomp_subscribe_main,
)

FANOUT_QUEUES = 8
CONFIRM_WINDOW = 100
PREFETCH_C = 100
ACK_EVERY_C = 50
PREFETCH_G = 1000
ACK_EVERY_G = 100
FIXED_RATE = 1000
GATEWAY_BODY = 100  # bytes of every MQTT payload and STOMP body (h-k)
MQTT_WINDOW = 100  # i: publishes without a PUBACK
STOMP_ACK = "client-individual"  # j: an ACK frame for every MESSAGE
STOMP_PREFETCH = 100  # j: prefetch-count of the subscription


@dataclass
class Sizes:
    """Message counts (warm-up + measured) of every scenario."""

    a: tuple[int, int] = (20_000, 500_000)
    b: tuple[int, int] = (10_000, 150_000)
    c: tuple[int, int] = (5_000, 100_000)
    d: tuple[int, int] = (5_000, 100_000)  # published; deliveries are 8x
    e: tuple[int, int] = (1_000, 10_000)  # at 1,000 msg/s: 1 s warm-up, 10 s measured
    f: int = 500
    g: int = 1_000_000
    h: tuple[int, int] = (10_000, 200_000)
    i: tuple[int, int] = (2_000, 50_000)
    j: tuple[int, int] = (5_000, 100_000)
    k: tuple[int, int] = (10_000, 200_000)

    @classmethod
    def quick(cls) -> Sizes:
        return cls(a=(5_000, 50_000), b=(1_000, 10_000), c=(500, 5_000), d=(500, 5_000),
                   e=(500, 3_000), f=500, g=100_000, h=(2_000, 20_000), i=(500, 5_000),
                   j=(1_000, 10_000), k=(2_000, 20_000))

    def scaled(self, factor: float) -> Sizes:
        def s(pair: tuple[int, int]) -> tuple[int, int]:
            return max(1, int(pair[0] * factor)), max(10, int(pair[1] * factor))
        return Sizes(a=s(self.a), b=s(self.b), c=s(self.c), d=s(self.d), e=self.e, f=self.f,
                     g=max(1000, int(self.g * factor)), h=s(self.h), i=s(self.i),
                     j=s(self.j), k=s(self.k))


def _name(kind: str) -> str:
    return "bench-" + kind + "-" + uuid.uuid4().hex[:8]


def admin(url: str, action: Callable[[Connection], Any]) -> None:
    """Run declarations or deletions over a short-lived connection of the parent."""

    async def go() -> None:
        conn = await Connection.open(url, "bench-admin")
        try:
            await action(conn)
        finally:
            await conn.close()

    asyncio.run(go())


def _cleanup(url: str, queues: list[str], exchange: str | None = None) -> None:
    async def delete(conn: Connection) -> None:
        for name in queues:
            await conn.delete_queue(name)
        if exchange:
            await conn.delete_exchange(exchange)

    try:
        admin(url, delete)
    except Exception as exc:  # the broker may be gone already; the run reports that
        print(f"  cleanup failed: {exc}")


def _inflight(body_size: int) -> int:
    """How far a producer may run ahead of its slowest consumer: about 8 MiB, 1k..20k."""
    return max(1000, min(20_000, 8 * 1024 * 1024 // (body_size + 70)))


def _window_metrics(win: Any, unit: str = "msg") -> dict[str, Any]:
    return {f"broker_cpu_us_per_{unit}": win.broker_us,
            f"generator_cpu_us_per_{unit}": win.generator_us, "steal_pct": win.steal_pct}


# --------------------------------------------------------------------------- a, b, c


def pipe(target: Target, warmup: int, count: int, body_size: int,
         persistent: bool = False) -> dict[str, Any]:
    """1 producer -> 1 queue -> 1 consumer. Transient + autoack, or durable + persistent
    + confirms (window 100) + manual ack (prefetch 100, multiple ack every 50)."""
    queue = _name("pipe")

    async def declare(conn: Connection) -> None:
        await conn.declare_queue(queue, durable=persistent)

    admin(target.url, declare)
    workers = Workers()
    total = warmup + count
    try:
        delivered, ready = counter(), CTX.Event()
        if persistent:
            workers.start("consumer", consume_main, target.url, [queue], False, PREFETCH_C,
                          ACK_EVERY_C, total, [delivered], ready)
        else:
            workers.start("consumer", consume_main, target.url, [queue], True, 0, 0, total,
                          [delivered], ready)
        workers.wait_until(ready.is_set, 30, "the consumer")
        workers.start("producer", produce_main, target.url, "", queue, body_size, persistent,
                      total, [delivered], _inflight(body_size),
                      CONFIRM_WINDOW if persistent else 0, warmup)
        win = measure(workers, lambda: delivered.value, warmup, total, target.pid)
        out = workers.join()
    finally:
        workers.stop()
        _cleanup(target.url, [queue])
    metrics: dict[str, Any] = {"delivered_per_s": win.rate}
    if body_size >= 1024:
        metrics["mib_per_s"] = win.rate * body_size / 2**20
    if persistent:
        producer = out["producer"]
        metrics["confirmed_per_s"] = total / producer["confirm_s"]
        metrics["confirm_p50_ms"] = producer["confirm_latency"].get("p50_ms")
        metrics["confirm_p99_ms"] = producer["confirm_latency"].get("p99_ms")
        metrics["nacks"] = producer["nacks"]
    metrics.update(_window_metrics(win))
    metrics["messages"] = win.messages
    return metrics


def scenario_a(target: Target, sizes: Sizes) -> dict[str, Any]:
    return pipe(target, *sizes.a, body_size=16)


def scenario_b(target: Target, sizes: Sizes) -> dict[str, Any]:
    return pipe(target, *sizes.b, body_size=4096)


def scenario_c(target: Target, sizes: Sizes) -> dict[str, Any]:
    return pipe(target, *sizes.c, body_size=16, persistent=True)


# --------------------------------------------------------------------------- d


def scenario_d(target: Target, sizes: Sizes) -> dict[str, Any]:
    """Fanout to 8 queues, one autoack consumer each (two consumer processes of four
    connections); the rate counted is deliveries (8 per published message)."""
    warmup, count = sizes.d
    total = warmup + count
    exchange = _name("fanout")
    queues = [f"{exchange}-{i}" for i in range(FANOUT_QUEUES)]

    async def declare(conn: Connection) -> None:
        await conn.declare_exchange(exchange, "fanout")
        for name in queues:
            await conn.declare_queue(name)
            await conn.bind(name, exchange)

    admin(target.url, declare)
    workers = Workers()
    try:
        counters = [counter() for _ in queues]
        readies = []
        half = FANOUT_QUEUES // 2
        for i, part in enumerate((slice(0, half), slice(half, None))):
            ready = CTX.Event()
            readies.append(ready)
            workers.start(f"consumer{i}", consume_main, target.url, queues[part], True, 0, 0,
                          total, counters[part], ready)
        workers.wait_until(lambda: all(r.is_set() for r in readies), 30, "the consumers")
        workers.start("producer", produce_main, target.url, exchange, "", 16, False, total,
                      counters, _inflight(16) // 4)
        win = measure(workers, lambda: sum(c.value for c in counters),
                      warmup * FANOUT_QUEUES, total * FANOUT_QUEUES, target.pid)
        workers.join()
    finally:
        workers.stop()
        _cleanup(target.url, queues, exchange)
    return {"deliveries_per_s": win.rate, **_window_metrics(win, "delivery"),
            "deliveries": win.messages}


# --------------------------------------------------------------------------- e


def scenario_e(target: Target, sizes: Sizes) -> dict[str, Any]:
    """1,000 msg/s of 16-byte messages, 1 queue, 1 autoack consumer; end-to-end latency
    from the monotonic clock in the body (writer's clock at write, reader's at parse)."""
    warmup, count = sizes.e
    total = warmup + count
    queue = _name("latency")
    admin(target.url, lambda conn: conn.declare_queue(queue))
    workers = Workers()
    try:
        delivered, ready = counter(), CTX.Event()
        workers.start("consumer", consume_main, target.url, [queue], True, 0, 0, total,
                      [delivered], ready, warmup)
        workers.wait_until(ready.is_set, 30, "the consumer")
        workers.start("producer", paced_main, target.url, queue, FIXED_RATE, total)
        win = measure(workers, lambda: delivered.value, warmup, total, target.pid)
        out = workers.join()
    finally:
        workers.stop()
        _cleanup(target.url, [queue])
    latency = out["consumer"]["latency"]
    return {"latency_p50_ms": latency["p50_ms"], "latency_p99_ms": latency["p99_ms"],
            "latency_max_ms": latency["max_ms"], "delivered_per_s": win.rate,
            **_window_metrics(win), "messages": win.messages}


# --------------------------------------------------------------------------- f


def scenario_f(target: Target, sizes: Sizes) -> dict[str, Any]:
    """N idle connections, each with a channel, an exclusive queue and a consumer: the
    broker's resident memory growth per connection, read 2 s after the last consume-ok."""
    n = sizes.f

    async def warm(conn: Connection) -> None:  # touch every code path once before the baseline
        name, _count = await conn.declare_queue("", exclusive=True)
        await conn.consume(name, no_ack=True)

    admin(target.url, warm)
    time.sleep(1.0)
    rss0 = rss_bytes(target.pid) if target.pid else None
    workers = Workers()
    try:
        ready, stop = CTX.Event(), CTX.Event()
        before = snapshot(0, target.pid, [])
        workers.start("connections", connections_main, target.url, n, ready, stop)
        workers.wait_until(ready.is_set, 300, "the connections")
        after = snapshot(n, target.pid, [])
        time.sleep(2.0)
        rss1 = rss_bytes(target.pid) if target.pid else None
        stop.set()
        out = workers.join()
    finally:
        workers.stop()
    broker_cpu = None if before.broker_cpu is None or after.broker_cpu is None else \
        (after.broker_cpu - before.broker_cpu) / n * 1e6
    kib = None if rss0 is None or rss1 is None else (rss1 - rss0) / n / 1024
    return {"kib_per_connection": kib, "connections_per_s": n / out["connections"]["setup_s"],
            "broker_cpu_us_per_connection": broker_cpu, "connections": n,
            "broker_rss_mib": None if rss1 is None else rss1 / 2**20}


# --------------------------------------------------------------------------- g


def scenario_g(target: Target, sizes: Sizes) -> dict[str, Any]:
    """N 16-byte transient messages into one queue with no consumer (publish rate: until
    queue.declare(passive) counts all N), then drained by one consumer with manual acks
    (prefetch 1000, multiple ack every 100). Memory: RSS growth per queued message."""
    n = sizes.g
    queue = _name("backlog")
    admin(target.url, lambda conn: conn.declare_queue(queue))
    time.sleep(0.5)
    rss0 = rss_bytes(target.pid) if target.pid else None
    workers = Workers()
    try:
        ready, go, done = CTX.Event(), CTX.Event(), CTX.Event()
        workers.start("fill", fill_main, target.url, queue, n, ready, go, done)
        workers.wait_until(ready.is_set, 30, "the publisher")
        fill_pids = workers.pids()
        before = snapshot(0, target.pid, fill_pids)
        go.set()
        workers.wait_until(done.is_set, 3600, "the backlog to fill")
        after = snapshot(n, target.pid, fill_pids)
        fill = workers.join()["fill"]
        time.sleep(1.0)
        rss1 = rss_bytes(target.pid) if target.pid else None

        drain_workers = Workers()
        try:
            delivered, cready = counter(), CTX.Event()
            drain_workers.start("drain", consume_main, target.url, [queue], False, PREFETCH_G,
                                ACK_EVERY_G, n, [delivered], cready)
            drain_workers.wait_until(cready.is_set, 30, "the consumer")
            drain = measure(drain_workers, lambda: delivered.value, n // 50, n, target.pid)
            drain_workers.join()
        finally:
            drain_workers.stop()
        time.sleep(1.0)
        rss2 = rss_bytes(target.pid) if target.pid else None
    finally:
        workers.stop()
        _cleanup(target.url, [queue])
    fill_broker = None if before.broker_cpu is None or after.broker_cpu is None else \
        (after.broker_cpu - before.broker_cpu) / n * 1e6
    return {
        "publish_per_s": n / fill["stored_s"],
        "drain_per_s": drain.rate,
        "bytes_per_queued_msg": None if rss0 is None or rss1 is None else (rss1 - rss0) / n,
        "broker_cpu_us_per_msg_publish": fill_broker,
        "broker_cpu_us_per_msg_drain": drain.broker_us,
        "generator_cpu_us_per_msg_publish": (after.generator_cpu - before.generator_cpu) / n
        * 1e6,
        "generator_cpu_us_per_msg_drain": drain.generator_us,
        "rss_after_drain_mib_over_start": None if rss0 is None or rss2 is None else
        (rss2 - rss0) / 2**20,
        "messages": n,
    }


# --------------------------------------------------------------------------- h, i, j, k


def _login(target: Target) -> tuple[str, str]:
    params = parse_url(target.url)
    return str(params["user"]), str(params["password"])


def mqtt_pipe(target: Target, warmup: int, count: int, qos: int) -> dict[str, Any]:
    """1 MQTT publisher -> 1 topic -> 1 MQTT subscriber (clean sessions), both at `qos`;
    at QoS 1 the publisher keeps at most MQTT_WINDOW publishes without a PUBACK."""
    host, port = target.endpoint("mqtt")
    user, password = _login(target)
    topic = "bench/" + uuid.uuid4().hex[:8]
    total = warmup + count
    workers = Workers()
    try:
        delivered, ready = counter(), CTX.Event()
        workers.start("subscriber", mqtt_subscribe_main, host, port, user, password, topic,
                      qos, total, delivered, ready)
        workers.wait_until(ready.is_set, 30, "the subscriber")
        workers.start("publisher", mqtt_publish_main, host, port, user, password, topic,
                      GATEWAY_BODY, qos, total, [delivered], _inflight(GATEWAY_BODY),
                      MQTT_WINDOW if qos else 0, warmup)
        win = measure(workers, lambda: delivered.value, warmup, total, target.pid)
        out = workers.join()
    finally:
        workers.stop()
    metrics: dict[str, Any] = {"delivered_per_s": win.rate}
    if qos:
        publisher = out["publisher"]
        metrics["pubacked_per_s"] = total / publisher["confirm_s"]
        metrics["puback_p50_ms"] = publisher["confirm_latency"].get("p50_ms")
        metrics["puback_p99_ms"] = publisher["confirm_latency"].get("p99_ms")
    metrics.update(_window_metrics(win))
    metrics["messages"] = win.messages
    return metrics


def scenario_h(target: Target, sizes: Sizes) -> dict[str, Any]:
    return mqtt_pipe(target, *sizes.h, qos=0)


def scenario_i(target: Target, sizes: Sizes) -> dict[str, Any]:
    return mqtt_pipe(target, *sizes.i, qos=1)


def scenario_j(target: Target, sizes: Sizes) -> dict[str, Any]:
    """1 STOMP sender -> /queue/<name> -> 1 STOMP subscriber in STOMP_ACK mode (an ACK
    for every MESSAGE, prefetch-count STOMP_PREFETCH); the queue is deleted afterwards."""
    host, port = target.endpoint("stomp")
    user, password = _login(target)
    warmup, count = sizes.j
    total = warmup + count
    queue = _name("stomp")
    workers = Workers()
    try:
        delivered, ready = counter(), CTX.Event()
        workers.start("subscriber", stomp_subscribe_main, host, port, user, password,
                      "/queue/" + queue, STOMP_ACK, STOMP_PREFETCH, total, delivered, ready)
        workers.wait_until(ready.is_set, 30, "the subscriber")
        workers.start("sender", stomp_send_main, host, port, user, password, "/queue/" + queue,
                      GATEWAY_BODY, total, [delivered], _inflight(GATEWAY_BODY))
        win = measure(workers, lambda: delivered.value, warmup, total, target.pid)
        workers.join()
    finally:
        workers.stop()
        _cleanup(target.url, [queue])
    return {"delivered_per_s": win.rate, **_window_metrics(win), "messages": win.messages}


def scenario_k(target: Target, sizes: Sizes) -> dict[str, Any]:
    """MQTT QoS 0 publisher on topic bench/<id> -> an AMQP queue bound to amq.topic with
    bench.<id> -> 1 AMQP autoack consumer."""
    host, port = target.endpoint("mqtt")
    user, password = _login(target)
    warmup, count = sizes.k
    total = warmup + count
    queue = _name("mqtt-to-amqp")
    ident = uuid.uuid4().hex[:8]

    async def declare(conn: Connection) -> None:
        await conn.declare_queue(queue)
        await conn.bind(queue, "amq.topic", "bench." + ident)  # MQTT's / is AMQP's .

    admin(target.url, declare)
    workers = Workers()
    try:
        delivered, ready = counter(), CTX.Event()
        workers.start("consumer", consume_main, target.url, [queue], True, 0, 0, total,
                      [delivered], ready)
        workers.wait_until(ready.is_set, 30, "the consumer")
        workers.start("publisher", mqtt_publish_main, host, port, user, password,
                      "bench/" + ident, GATEWAY_BODY, 0, total, [delivered],
                      _inflight(GATEWAY_BODY))
        win = measure(workers, lambda: delivered.value, warmup, total, target.pid)
        workers.join()
    finally:
        workers.stop()
        _cleanup(target.url, [queue])
    return {"delivered_per_s": win.rate, **_window_metrics(win), "messages": win.messages}


SCENARIOS: dict[str, tuple[str, Callable[[Target, Sizes], dict[str, Any]]]] = {
    "a": ("1 producer -> 1 queue -> 1 consumer, 16 B, transient, autoack", scenario_a),
    "b": ("as a, 4 KiB bodies", scenario_b),
    "c": ("durable, persistent, confirms (window 100), manual ack (prefetch 100)",
          scenario_c),
    "d": ("fanout to 8 queues, a consumer each", scenario_d),
    "e": ("1,000 msg/s fixed rate, end-to-end latency", scenario_e),
    "f": ("idle connections: channel + exclusive queue + consumer each", scenario_f),
    "g": ("backlog of 16 B messages, no consumer; then drained with acks", scenario_g),
    "h": ("MQTT QoS 0, 1 publisher -> 1 topic -> 1 subscriber, 100 B", scenario_h),
    "i": ("MQTT QoS 1 (window 100 PUBACKs) -> 1 QoS 1 subscriber, 100 B", scenario_i),
    "j": ("STOMP SEND -> /queue -> 1 subscriber (client-individual, prefetch 100), 100 B",
          scenario_j),
    "k": ("MQTT QoS 0 publish -> amq.topic -> AMQP queue, autoack consumer, 100 B",
          scenario_k),
}

# Per scenario: (metric, label, which way is better); the first is the headline.
METRICS: dict[str, list[tuple[str, str, str]]] = {
    "a": [("delivered_per_s", "delivered msg/s", "higher"),
          ("broker_cpu_us_per_msg", "broker CPU us/msg", "lower"),
          ("generator_cpu_us_per_msg", "generator CPU us/msg", "lower")],
    "b": [("delivered_per_s", "delivered msg/s", "higher"),
          ("mib_per_s", "delivered MiB/s", "higher"),
          ("broker_cpu_us_per_msg", "broker CPU us/msg", "lower"),
          ("generator_cpu_us_per_msg", "generator CPU us/msg", "lower")],
    "c": [("delivered_per_s", "delivered (acked) msg/s", "higher"),
          ("confirmed_per_s", "confirmed msg/s (whole run)", "higher"),
          ("confirm_p50_ms", "confirm latency p50 ms", "lower"),
          ("confirm_p99_ms", "confirm latency p99 ms", "lower"),
          ("broker_cpu_us_per_msg", "broker CPU us/msg", "lower"),
          ("generator_cpu_us_per_msg", "generator CPU us/msg", "lower"),
          ("steal_pct", "machine CPU stolen by the host %", "lower")],
    "d": [("deliveries_per_s", "deliveries/s", "higher"),
          ("broker_cpu_us_per_delivery", "broker CPU us/delivery", "lower"),
          ("generator_cpu_us_per_delivery", "generator CPU us/delivery", "lower")],
    "e": [("latency_p99_ms", "latency p99 ms", "lower"),
          ("latency_p50_ms", "latency p50 ms", "lower"),
          ("latency_max_ms", "latency max ms", "lower"),
          ("delivered_per_s", "delivered msg/s", "higher"),
          ("broker_cpu_us_per_msg", "broker CPU us/msg", "lower"),
          ("generator_cpu_us_per_msg", "generator CPU us/msg", "lower")],
    "f": [("kib_per_connection", "broker KiB/connection", "lower"),
          ("connections_per_s", "connection setups/s", "higher"),
          ("broker_cpu_us_per_connection", "broker CPU us/connection", "lower"),
          ("broker_rss_mib", "broker RSS MiB (all open)", "lower")],
    "g": [("publish_per_s", "publish msg/s (to queued)", "higher"),
          ("drain_per_s", "drain msg/s (acked)", "higher"),
          ("bytes_per_queued_msg", "broker bytes/queued msg", "lower"),
          ("broker_cpu_us_per_msg_publish", "broker CPU us/msg publish", "lower"),
          ("broker_cpu_us_per_msg_drain", "broker CPU us/msg drain", "lower"),
          ("generator_cpu_us_per_msg_publish", "generator CPU us/msg publish", "lower"),
          ("generator_cpu_us_per_msg_drain", "generator CPU us/msg drain", "lower"),
          ("rss_after_drain_mib_over_start", "broker RSS after drain, MiB over start",
           "lower")],
    "h": [("delivered_per_s", "delivered msg/s", "higher"),
          ("broker_cpu_us_per_msg", "broker CPU us/msg", "lower"),
          ("generator_cpu_us_per_msg", "generator CPU us/msg", "lower")],
    "i": [("delivered_per_s", "delivered msg/s", "higher"),
          ("broker_cpu_us_per_msg", "broker CPU us/msg", "lower"),
          ("pubacked_per_s", "PUBACKed msg/s (whole run)", "higher"),
          ("puback_p50_ms", "PUBACK latency p50 ms", "lower"),
          ("puback_p99_ms", "PUBACK latency p99 ms", "lower"),
          ("generator_cpu_us_per_msg", "generator CPU us/msg", "lower")],
    "j": [("delivered_per_s", "delivered (acked) msg/s", "higher"),
          ("broker_cpu_us_per_msg", "broker CPU us/msg", "lower"),
          ("generator_cpu_us_per_msg", "generator CPU us/msg", "lower")],
    "k": [("delivered_per_s", "delivered msg/s", "higher"),
          ("broker_cpu_us_per_msg", "broker CPU us/msg", "lower"),
          ("generator_cpu_us_per_msg", "generator CPU us/msg", "lower")],
}
