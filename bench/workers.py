"""Load-generator processes and the parent's view of them.

Every producer and consumer (AMQP, MQTT or STOMP) runs in its own forked process on its
own event loop (uvloop when installed), so the generator shares no interpreter with the
broker or with the orchestrating parent. Consumers publish their delivered count through
shared memory once per read pass; producers read those counts to keep at most
`max_inflight` messages between them and the slowest consumer (so they measure the broker,
not how much the socket buffers hold). The parent samples the counts, the clock and /proc
(broker and generator CPU) at the start and end of a measured window.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import multiprocessing
import queue
import time
import traceback
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from bench import mqtt, stomp
from bench.amqp import AMQPError, Connection, encode_publish
from bench.brokers import cpu_seconds

CTX = multiprocessing.get_context("fork")
STALL_SECONDS = 60.0


class BenchError(Exception):
    pass


def run_async(coro: Coroutine[Any, Any, Any]) -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is in the [fast] extra
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def percentiles(samples_ns: Sequence[int]) -> dict[str, float]:
    """p50 / p99 / max in milliseconds (empty dict without samples)."""
    if not samples_ns:
        return {}
    ordered = sorted(samples_ns)
    last = len(ordered) - 1
    return {"p50_ms": ordered[last // 2] / 1e6,
            "p99_ms": ordered[min(last, round(last * 0.99))] / 1e6,
            "max_ms": ordered[last] / 1e6, "samples": len(ordered)}


# --------------------------------------------------------------------------- processes


def _child(name: str, fn: Callable[..., Coroutine[Any, Any, Any]], args: tuple[Any, ...],
           results: Any) -> None:
    try:
        value = run_async(fn(*args))
    except BaseException:
        results.put((name, False, traceback.format_exc()))
        raise SystemExit(1) from None
    results.put((name, True, value))


class Workers:
    """The generator processes of one run."""

    def __init__(self) -> None:
        self.results = CTX.Queue()
        self.procs: dict[str, Any] = {}
        self.out: dict[str, Any] = {}
        self.errors: dict[str, str] = {}

    def start(self, name: str, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> None:
        proc = CTX.Process(target=_child, args=(name, fn, args, self.results), daemon=True,
                           name="bench-" + name)
        proc.start()
        self.procs[name] = proc

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs.values() if p.exitcode is None]

    def _collect(self, block: float = 0.0) -> None:
        while True:
            try:
                name, ok, value = self.results.get(timeout=block) if block else \
                    self.results.get_nowait()
            except queue.Empty:
                return
            block = 0.0
            if ok:
                self.out[name] = value
            else:
                self.errors[name] = value

    def check(self) -> None:
        """Raise when a generator process has failed."""
        self._collect()
        for name, proc in self.procs.items():
            if proc.exitcode not in (None, 0):
                self._collect(block=2.0)
                raise BenchError(f"{name} failed: " + self.errors.get(
                    name, f"exit code {proc.exitcode}").strip().splitlines()[-1])

    def wait_until(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            self.check()
            if time.monotonic() > deadline:
                raise BenchError(f"timed out waiting for {what}")
            time.sleep(0.001)

    def join(self, timeout: float = 120.0) -> dict[str, Any]:
        """Wait for every process to finish; their return values by name."""
        self.wait_until(lambda: all(p.exitcode is not None for p in self.procs.values())
                        and len(self.out) == len(self.procs), timeout, "generator processes")
        return self.out

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.exitcode is None:
                proc.terminate()
        for proc in self.procs.values():
            proc.join(5)


@dataclass
class Snapshot:
    at: float
    count: int
    broker_cpu: float | None
    generator_cpu: float
    steal: tuple[int, int]  # the machine's CPU ticks: stolen by the hypervisor, all


def machine_steal() -> tuple[int, int]:
    """(stolen, all) CPU ticks of the whole machine so far, from /proc/stat; on a shared
    virtual machine the stolen share moves results a lot, so the report shows it."""
    try:
        with open("/proc/stat") as stat:
            ticks = [int(t) for t in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    return (ticks[7] if len(ticks) > 7 else 0), sum(ticks)


def snapshot(count: int, broker_pid: int | None, generator_pids: list[int]) -> Snapshot:
    gen = 0.0
    for pid in generator_pids:
        with contextlib.suppress(OSError):
            gen += cpu_seconds(pid)
    return Snapshot(time.perf_counter(), count,
                    cpu_seconds(broker_pid) if broker_pid else None, gen, machine_steal())


@dataclass
class Window:
    """What happened between two snapshots."""

    messages: int
    seconds: float
    broker_cpu: float | None
    generator_cpu: float
    steal_pct: float | None  # the machine's CPU time stolen by the hypervisor meanwhile

    @classmethod
    def between(cls, a: Snapshot, b: Snapshot) -> Window:
        broker = None if a.broker_cpu is None or b.broker_cpu is None else \
            b.broker_cpu - a.broker_cpu
        ticks = b.steal[1] - a.steal[1]
        steal = 100 * (b.steal[0] - a.steal[0]) / ticks if ticks > 0 else None
        return cls(b.count - a.count, b.at - a.at, broker, b.generator_cpu - a.generator_cpu,
                   steal)

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    @property
    def broker_us(self) -> float | None:
        return None if self.broker_cpu is None else self.broker_cpu / self.messages * 1e6

    @property
    def generator_us(self) -> float:
        return self.generator_cpu / self.messages * 1e6


def measure(workers: Workers, progress: Callable[[], int], start: int, end: int,
            broker_pid: int | None) -> Window:
    """Wait until `progress()` reaches `start`, then `end`; snapshot at both."""
    snaps = []
    for goal in (start, end):
        last, last_change = -1, time.monotonic()
        while True:
            count = progress()
            if count >= goal:
                snaps.append(snapshot(count, broker_pid, workers.pids()))
                break
            now = time.monotonic()
            if count != last:
                last, last_change = count, now
            elif now - last_change > STALL_SECONDS:
                raise BenchError(f"stalled at {count} of {goal} messages")
            workers.check()
            time.sleep(0.001)
    return Window.between(*snaps)


def counter() -> Any:
    return CTX.RawValue("q", 0)


# --------------------------------------------------------------------------- consumers


async def consume_main(url: str, queues: list[str], no_ack: bool, prefetch: int,
                       ack_every: int, expected: int, counters: list[Any], ready: Any,
                       latency_after: int | None = None) -> dict[str, Any]:
    """One connection per queue; returns when each has received `expected` messages."""
    conns = []
    for name, count in zip(queues, counters, strict=True):
        conn = await Connection.open(url, "bench-consumer")
        if prefetch:
            await conn.qos(prefetch)
        conn.counter = count
        if latency_after is not None:
            conn.latency_ns = []
            conn.latency_after = latency_after
        await conn.consume(name, no_ack, ack_every)
        conns.append(conn)
    ready.set()
    for conn in conns:
        await conn.delivered_at_least(expected)
    samples: list[int] = []
    for conn in conns:
        if not no_ack:
            conn.ack()
        samples += conn.latency_ns or []
    for conn in conns:
        await conn.close()
    return {"delivered": [c.delivered for c in conns], "latency": percentiles(samples)}


# --------------------------------------------------------------------------- producers


class Confirms:
    """Publisher-confirm bookkeeping: which tags are confirmed, and how long each took."""

    def __init__(self, total: int, latency_after: int) -> None:
        self.sent_ns = array.array("q", bytes(8 * (total + 1)))
        self.done = bytearray(total + 1)
        self.low = 1
        self.count = 0
        self.nacks = 0
        self.latency_after = latency_after
        self.latency_ns: list[int] = []
        self.waiter: asyncio.Future[None] | None = None

    def stamp(self, first: int, n: int) -> None:
        now = time.perf_counter_ns()
        sent = self.sent_ns
        for tag in range(first, first + n):
            sent[tag] = now

    def on_confirm(self, tag: int, multiple: bool, nack: bool) -> None:
        now = time.perf_counter_ns()
        done, sent, lat, after = self.done, self.sent_ns, self.latency_ns, self.latency_after
        first = self.low if multiple else tag
        confirmed = 0
        for t in range(first, tag + 1):
            if not done[t]:
                done[t] = 1
                confirmed += 1
                if t > after:
                    lat.append(now - sent[t])
        self.count += confirmed
        if nack:
            self.nacks += confirmed
        low = self.low
        limit = len(done)
        while low < limit and done[low]:
            low += 1
        self.low = low
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def wait(self) -> None:
        self.waiter = asyncio.get_running_loop().create_future()
        await self.waiter


async def produce_main(url: str, exchange: str, routing_key: str, body_size: int,
                       persistent: bool, total: int, gates: list[Any], max_inflight: int,
                       confirm_window: int = 0, latency_after: int = 0,
                       ready: Any = None, go: Any = None) -> dict[str, Any]:
    """Publish `total` identical messages in pre-encoded batches (~64 KiB per write), at
    most `max_inflight` ahead of the slowest consumer in `gates` and, with confirms, at
    most `confirm_window` unconfirmed."""
    conn = await Connection.open(url, "bench-producer")
    one = encode_publish(exchange, routing_key, b"x" * body_size, persistent)
    size = len(one)
    per_batch = max(1, min(1024, 65536 // size))
    batch = memoryview(one * per_batch)
    confirms = None
    if confirm_window:
        await conn.confirm_select()
        confirms = Confirms(total, latency_after)
        conn.on_confirm = confirms.on_confirm
    if ready is not None:
        ready.set()
        while not go.is_set():
            await asyncio.sleep(0.001)
    started = time.perf_counter()
    sent = 0
    sleep = asyncio.sleep
    while sent < total:
        n = min(per_batch, total - sent)
        if gates:
            room = max_inflight - (sent - min(g.value for g in gates))
            if room < min(n, 64):  # wait for a worthwhile batch, not a trickle
                if conn.error:
                    raise AMQPError(conn.error)
                await sleep(0.001)  # uvloop timers tick in ms: less would spin
                continue
            n = min(n, room)
        if confirms is not None:
            room = confirm_window - (sent - confirms.count)
            if room <= 0:
                await confirms.wait()
                continue
            n = min(n, room)
            confirms.stamp(sent + 1, n)
        if conn.paused or conn.blocked or conn.error:
            await conn.drain()
        conn.write(batch[: n * size])
        sent += n
    written = time.perf_counter()
    if confirms is not None:
        while confirms.count < total:
            if conn.error:
                raise AMQPError(conn.error)
            await confirms.wait()
    confirmed = time.perf_counter()
    result: dict[str, Any] = {"write_s": written - started, "confirm_s": confirmed - started}
    if confirms is not None:
        result["confirm_latency"] = percentiles(confirms.latency_ns)
        result["nacks"] = confirms.nacks
    await conn.close()
    return result


async def paced_main(url: str, routing_key: str, rate: float, total: int) -> dict[str, Any]:
    """Publish `total` 16-byte messages at a fixed `rate`, each body starting with the
    monotonic clock (ns) at the moment it is written."""
    conn = await Connection.open(url, "bench-paced-producer")
    one = encode_publish("", routing_key, bytes(16))
    prefix, suffix = one[:-17], bytes(8) + b"\xce"
    stamp = time.perf_counter_ns
    start = time.perf_counter()
    sent = 0
    while sent < total:
        due = min(total, int((time.perf_counter() - start) * rate) + 1)
        if due > sent:
            parts = []
            while sent < due:
                parts.append(prefix + stamp().to_bytes(8, "big") + suffix)
                sent += 1
            if conn.paused or conn.blocked or conn.error:
                await conn.drain()
            conn.write(b"".join(parts))
        # uvloop rounds timers to whole ms: a shorter sleep would spin, so sleep >= 1 ms
        # and send whatever fell due meanwhile (the schedule is absolute, so no drift)
        await asyncio.sleep(max(0.001, start + sent / rate - time.perf_counter()))
    elapsed = time.perf_counter() - start
    await conn.close()
    return {"seconds": elapsed}


async def fill_main(url: str, routing_key: str, total: int, ready: Any, go: Any,
                    done: Any) -> dict[str, Any]:
    """Publish `total` 16-byte transient messages as fast as the broker reads them, then
    poll queue.declare(passive) on the same channel until the queue holds all of them."""
    conn = await Connection.open(url, "bench-fill")
    one = encode_publish("", routing_key, b"x" * 16)
    per_batch = 65536 // len(one)
    batch = memoryview(one * per_batch)
    ready.set()
    while not go.is_set():
        await asyncio.sleep(0.001)
    started = time.perf_counter()
    sent = 0
    while sent < total:
        n = min(per_batch, total - sent)
        if conn.paused or conn.blocked or conn.error:
            await conn.drain()
        conn.write(batch[: n * len(one)])
        sent += n
    written = time.perf_counter()
    while True:
        _name, count = await conn.declare_queue(routing_key, passive=True)
        if count >= total:
            break
        await asyncio.sleep(0.005)
    stored = time.perf_counter()
    done.set()
    await conn.close()
    return {"write_s": written - started, "stored_s": stored - started}


async def connections_main(url: str, n: int, ready: Any, stop: Any) -> dict[str, Any]:
    """Open `n` connections, each with a channel, an exclusive server-named queue and a
    consumer on it; hold them until `stop` is set."""
    conns: list[Connection] = []
    gate = asyncio.Semaphore(20)

    async def one(i: int) -> None:
        async with gate:
            conn = await Connection.open(url, f"bench-idle-{i}")
            name, _count = await conn.declare_queue("", exclusive=True)
            await conn.consume(name, no_ack=True)
            conns.append(conn)

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    setup = time.perf_counter() - started
    ready.set()
    while not stop.is_set():
        for conn in conns:
            if conn.error:
                raise AMQPError(conn.error)
        await asyncio.sleep(0.05)
    await asyncio.gather(*(c.close() for c in conns))
    return {"setup_s": setup}


# --------------------------------------------------------------------------- MQTT, STOMP


def _client_id(kind: str) -> str:
    return f"bench-{kind}-{uuid.uuid4().hex[:8]}"


async def _publish_ring(client: mqtt.Client | stomp.Client, ring: memoryview, count: int,
                        total: int, gates: list[Any], max_inflight: int,
                        confirms: Confirms | None = None, window: int = 0) -> dict[str, Any]:
    """Write `total` publishes as slices of `ring` (`count` whole packets or frames,
    written in turn), at most `max_inflight` ahead of the slowest consumer in `gates` and,
    with `confirms`, at most `window` unconfirmed; return once every consumer has all."""
    size = len(ring) // count
    started = time.perf_counter()
    sent = 0
    sleep = asyncio.sleep
    while sent < total:
        at = sent % count
        n = min(count - at, total - sent)
        room = max_inflight - (sent - min(g.value for g in gates))
        if room < min(n, 64):  # wait for a worthwhile batch, not a trickle
            if client.error:
                await client.drain()  # raises the client's error
            await sleep(0.001)
            continue
        n = min(n, room)
        if confirms is not None:
            room = window - (sent - confirms.count)
            if room <= 0:
                await confirms.wait()
                continue
            n = min(n, room)
            confirms.stamp(sent + 1, n)
        if client.paused or client.error:
            await client.drain()
        client.write(ring[at * size:(at + n) * size])
        sent += n
    written = time.perf_counter()
    if confirms is not None:
        while confirms.count < total:
            if client.error:
                await client.drain()
            await confirms.wait()
    confirmed = time.perf_counter()
    while min(g.value for g in gates) < total:  # closing now could drop what is in flight
        if client.error:
            await client.drain()
        await sleep(0.005)
    result: dict[str, Any] = {"write_s": written - started, "confirm_s": confirmed - started}
    if confirms is not None:
        result["confirm_latency"] = percentiles(confirms.latency_ns)
    return result


async def mqtt_publish_main(host: str, port: int, user: str, password: str, topic: str,
                            body_size: int, qos: int, total: int, gates: list[Any],
                            max_inflight: int, window: int = 0,
                            latency_after: int = 0) -> dict[str, Any]:
    """Publish `total` identical payloads to `topic` at QoS 0 or 1 (then at most `window`
    without a PUBACK; PUBACK latency from the write of a publish to its PUBACK)."""
    client = await mqtt.Client.open(host, port, _client_id("pub"), user, password)
    ring, count = mqtt.encode_ring(topic, b"x" * body_size, qos)
    confirms = None
    if qos:
        confirms = Confirms(total, latency_after)
        acked = confirms

        def on_puback(ident: int) -> None:  # the unacked publish with this packet id
            low = acked.low
            acked.on_confirm(low + (ident - low) % mqtt.PACKET_IDS, False, False)

        client.on_puback = on_puback
    result = await _publish_ring(client, ring, count, total, gates, max_inflight, confirms,
                                 window)
    client.close()
    return result


async def mqtt_subscribe_main(host: str, port: int, user: str, password: str, topic: str,
                              qos: int, expected: int, count: Any, ready: Any) -> dict[str, Any]:
    """Subscribe to `topic` at `qos` (QoS 1: a PUBACK for every delivery); returns once
    `expected` publishes have arrived."""
    client = await mqtt.Client.open(host, port, _client_id("sub"), user, password)
    client.counter = count
    await client.subscribe(topic, qos)
    ready.set()
    await client.delivered_at_least(expected)
    client.close()
    return {"delivered": client.delivered}


async def stomp_send_main(host: str, port: int, user: str, password: str, destination: str,
                          body_size: int, total: int, gates: list[Any],
                          max_inflight: int) -> dict[str, Any]:
    """SEND `total` identical bodies to `destination` in ~64 KiB batches of frames."""
    client = await stomp.Client.open(host, port, user, password)
    one = stomp.encode_send(destination, b"x" * body_size)
    count = max(1, min(1024, 65536 // len(one)))
    result = await _publish_ring(client, memoryview(one * count), count, total, gates,
                                 max_inflight)
    await client.close()
    return result


async def stomp_subscribe_main(host: str, port: int, user: str, password: str,
                               destination: str, ack: str, prefetch: int, expected: int,
                               count: Any, ready: Any) -> dict[str, Any]:
    """SUBSCRIBE to `destination` in ack mode `ack` (client modes: an ACK for every
    MESSAGE); returns once `expected` messages have arrived."""
    client = await stomp.Client.open(host, port, user, password)
    client.counter = count
    await client.subscribe(destination, ack, prefetch)
    ready.set()
    await client.delivered_at_least(expected)
    await client.close()
    return {"delivered": client.delivered}
