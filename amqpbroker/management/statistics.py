"""Statistics as the management API serves them: sums of the model's message counters
(per vhost and for the node), samples of counters and lengths taken every
`collect_statistics_interval`, and from those RabbitMQ's `*_details` (a rate, and with
`msg_rates_age`/`lengths_age` the samples, their average and average rate).

The sampler keeps a bounded history per live object and forgets objects that are gone.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskStatus

from amqpbroker.broker.stats import CHURN, COUNTERS, MessageStats
from amqpbroker.management.shapes import unacked_by_queue

if TYPE_CHECKING:
    from amqpbroker.broker.channel import Channel
    from amqpbroker.broker.exchange import Exchange
    from amqpbroker.broker.queue import Queue
    from amqpbroker.broker.vhost import VirtualHost
    from amqpbroker.transport.bridge import ClientConnection
    from amqpbroker.transport.server import Server

HISTORY = 121  # samples kept per object: ten minutes at RabbitMQ's 5 s interval
LENGTHS = ("messages", "messages_ready", "messages_unacknowledged")
OCTETS = ("recv_oct", "send_oct")
INDEX = {name: i for i, name in enumerate(COUNTERS)}
# The counters each kind of object shows in `message_stats`.
CHANNEL_FIELDS = ("publish", "confirm", "return_unroutable", "drop_unroutable", "deliver",
                  "deliver_no_ack", "get", "get_no_ack", "get_empty", "ack", "redeliver")
QUEUE_FIELDS = ("publish", "deliver", "deliver_no_ack", "get", "get_no_ack", "get_empty",
                "ack", "redeliver")
EXCHANGE_FIELDS = ("publish_in", "publish_out")
NODE = "node"  # the history keys of the node's totals and of its churn
CHURN_KEY = "churn"

Sample = tuple[float, tuple[int, ...]]


def channel_totals(clients: Iterable[ClientConnection]) -> dict[str, MessageStats]:
    """The counters of every open channel, summed per vhost name."""
    found: dict[str, MessageStats] = {}
    for client in clients:
        session = client.session
        if session is None:
            continue
        total = found.setdefault(session.vhost.name, MessageStats())
        for channel in session.channels.values():
            total.add(channel.stats)
    return found


def vhost_totals(vhost: VirtualHost, open_channels: MessageStats | None) -> MessageStats:
    """A vhost's message counters: those of its closed and of its open channels."""
    total = MessageStats()
    total.add(vhost.closed_channel_stats)
    if open_channels is not None:
        total.add(open_channels)
    return total


def open_clients(server: Server) -> list[ClientConnection]:
    """The server's connections past the handshake."""
    return [c for c in server.clients if c.session is not None]


def totals(server: Server) -> dict[str, MessageStats]:
    """Every vhost's message counters, by name."""
    open_channels = channel_totals(open_clients(server))
    return {name: vhost_totals(v, open_channels.get(name))
            for name, v in server.broker.vhosts.items()}


def node_totals(by_vhost: Mapping[str, MessageStats], deleted: MessageStats) -> MessageStats:
    """The node's message counters: the sum over its vhosts and the vhosts deleted
    (`deleted`), so that they never go down."""
    node = MessageStats()
    node.add(deleted)
    for stats in by_vhost.values():
        node.add(stats)
    return node


class Statistics:
    """The history of samples of one server's objects, and what the API makes of it."""

    def __init__(self, server: Server, interval: float) -> None:
        self.server = server
        self.interval = interval
        self.history: dict[Any, deque[Sample]] = {}

    # --- sampling -----------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Take a sample now and then every interval, until cancelled."""
        task_status.started()
        while True:
            self.sample()
            await anyio.sleep(self.interval)

    def sample(self) -> None:
        now = time.time()
        old, new = self.history, {}

        def keep(key: Any, values: tuple[int, ...]) -> None:
            samples = old.get(key)
            if samples is None:
                samples = deque(maxlen=HISTORY)
            samples.append((now, values))
            new[key] = samples

        clients = open_clients(self.server)
        unacked = unacked_by_queue(clients)
        by_vhost = totals(self.server)
        node_ready = node_unacked = 0
        for name, vhost in self.server.broker.vhosts.items():
            ready_sum = unacked_sum = 0
            for queue in vhost.queues.values():
                ready, held = queue.message_count, unacked.get(queue, (0, 0))[0]
                ready_sum += ready
                unacked_sum += held
                keep(queue, (*queue.stats.values(), ready + held, ready, held))
            for exchange in vhost.exchanges.values():
                keep(exchange, exchange.stats.values())
            keep(("default-exchange", name), vhost.default_exchange_stats.values())
            keep(vhost, (*by_vhost[name].values(), ready_sum + unacked_sum, ready_sum,
                         unacked_sum))
            node_ready += ready_sum
            node_unacked += unacked_sum
        for client in clients:
            keep(client, (client.recv_oct, client.send_oct))
            assert client.session is not None
            for channel in client.session.channels.values():
                keep(channel, channel.stats.values())
        deleted = self.server.broker.deleted_vhost_stats
        keep(NODE, (*node_totals(by_vhost, deleted).values(), node_ready + node_unacked,
                    node_ready, node_unacked))
        keep(CHURN_KEY, self.server.broker.churn.values())
        self.history = new

    # --- what the API shows ----------------------------------------------------------

    def details(self, key: Any, index: int, query: Mapping[str, str], age_key: str
                ) -> dict[str, Any]:
        """A `*_details` object: the latest rate, and with `<age_key>` (seconds) and
        `<incr>` also the samples in that window, newest first, their average and the
        average rate over the window."""
        samples = self.history.get(key) or deque()
        rate = 0.0
        if len(samples) >= 2:
            (t0, v0), (t1, v1) = samples[-2], samples[-1]
            rate = (v1[index] - v0[index]) / (t1 - t0) if t1 > t0 else 0.0
        found: dict[str, Any] = {"rate": round(rate, 1)}
        age = _seconds(query.get(age_key))
        if age is None:
            return found
        increment = _seconds(query.get(age_key.replace("_age", "_incr"))) or self.interval
        # Every sample, or with an increment above the interval one per increment.
        gap = increment - self.interval / 2 if increment > self.interval else 0.0
        newest = samples[-1][0] if samples else time.time()
        window: list[Sample] = []
        next_at = newest
        for when, values in reversed(samples):
            if when < newest - age:
                break
            if when <= next_at:
                window.append((when, values))
                next_at = when - gap
        found["samples"] = [{"sample": values[index], "timestamp": int(when * 1000)}
                            for when, values in window]
        if window:
            found["avg"] = round(sum(v[index] for _, v in window) / len(window), 1)
            (last_t, last_v), (first_t, first_v) = window[0], window[-1]
            span = last_t - first_t
            found["avg_rate"] = round((last_v[index] - first_v[index]) / span, 1) if span else 0.0
        else:
            found["avg"] = found["avg_rate"] = 0.0
        return found

    def message_stats(self, key: Any, stats: MessageStats, names: Iterable[str],
                      query: Mapping[str, str]) -> dict[str, Any]:
        """`message_stats`: the counters that have counted something, each with its
        details, and `deliver_get` (deliveries and gets of both ack modes)."""
        if query.get("disable_stats") == "true":
            return {}
        found: dict[str, Any] = {}
        for name in names:
            value = getattr(stats, name)
            if value:
                found[name] = value
                found[f"{name}_details"] = self.details(key, INDEX[name], query,
                                                        "msg_rates_age")
        parts = [n for n in ("deliver", "deliver_no_ack", "get", "get_no_ack") if n in names]
        if parts:
            deliver_get = sum(getattr(stats, n) for n in parts)
            if deliver_get:
                found["deliver_get"] = deliver_get
                found["deliver_get_details"] = self._sum_details(key, parts, query)
        return found

    def _sum_details(self, key: Any, parts: list[str], query: Mapping[str, str]
                     ) -> dict[str, Any]:
        details = [self.details(key, INDEX[n], query, "msg_rates_age") for n in parts]
        found: dict[str, Any] = {"rate": round(sum(d["rate"] for d in details), 1)}
        if "samples" in details[0]:
            found["samples"] = [
                {"sample": sum(d["samples"][i]["sample"] for d in details),
                 "timestamp": sample["timestamp"]}
                for i, sample in enumerate(details[0]["samples"])]
            found["avg"] = round(sum(d["avg"] for d in details), 1)
            found["avg_rate"] = round(sum(d["avg_rate"] for d in details), 1)
        return found

    def lengths(self, key: Any, values: tuple[int, int, int], query: Mapping[str, str]
                ) -> dict[str, Any]:
        """`messages`, `messages_ready` and `messages_unacknowledged` with details (the
        lengths follow the message counters in a queue's, vhost's or the node's sample)."""
        first = len(COUNTERS)
        found: dict[str, Any] = {}
        for offset, (name, value) in enumerate(zip(LENGTHS, values, strict=True)):
            found[name] = value
            found[f"{name}_details"] = self.details(key, first + offset, query, "lengths_age")
        return found

    def octets(self, client: ClientConnection, query: Mapping[str, str]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for index, name in enumerate(OCTETS):
            found[name] = getattr(client, name)
            found[f"{name}_details"] = self.details(client, index, query, "msg_rates_age")
        return found


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class View:
    """The statistics fields of the objects of one API answer, for the query's
    `msg_rates_age`, `lengths_age` and `disable_stats`; the sums it needs are taken once
    per answer."""

    def __init__(self, statistics: Statistics, query: Mapping[str, str]) -> None:
        self.statistics = statistics
        self.query = query
        self._unacked: dict[Queue, tuple[int, int]] | None = None
        self._totals: dict[str, MessageStats] | None = None

    @property
    def unacked(self) -> dict[Queue, tuple[int, int]]:
        if self._unacked is None:
            self._unacked = unacked_by_queue(open_clients(self.statistics.server))
        return self._unacked

    @property
    def totals(self) -> dict[str, MessageStats]:
        if self._totals is None:
            self._totals = totals(self.statistics.server)
        return self._totals

    def queue(self, q: Queue) -> dict[str, Any]:
        ready, held = q.message_count, self.unacked.get(q, (0, 0))[0]
        return {**self.statistics.lengths(q, (ready + held, ready, held), self.query),
                "message_stats": self.statistics.message_stats(q, q.stats, QUEUE_FIELDS,
                                                               self.query)}

    def exchange(self, x: Exchange) -> dict[str, Any]:
        return {"message_stats": self.statistics.message_stats(x, x.stats, EXCHANGE_FIELDS,
                                                               self.query)}

    def default_exchange(self, v: VirtualHost) -> dict[str, Any]:
        return {"message_stats": self.statistics.message_stats(
            ("default-exchange", v.name), v.default_exchange_stats, EXCHANGE_FIELDS,
            self.query)}

    def channel(self, ch: Channel) -> dict[str, Any]:
        return {"message_stats": self.statistics.message_stats(ch, ch.stats, CHANNEL_FIELDS,
                                                               self.query)}

    def connection(self, client: ClientConnection) -> dict[str, Any]:
        return self.statistics.octets(client, self.query)

    def vhost(self, v: VirtualHost) -> dict[str, Any]:
        ready, held = self._lengths(v.queues.values())
        return {**self.statistics.lengths(v, (ready + held, ready, held), self.query),
                "message_stats": self.statistics.message_stats(
                    v, self.totals.get(v.name, MessageStats()), CHANNEL_FIELDS, self.query)}

    def node(self) -> dict[str, Any]:
        """The overview's `message_stats` and `queue_totals`."""
        ready, held = self._lengths(q for v in self.statistics.server.broker.vhosts.values()
                                    for q in v.queues.values())
        return {"message_stats": self.statistics.message_stats(
                    NODE, node_totals(self.totals, self.statistics.server.broker
                                      .deleted_vhost_stats), CHANNEL_FIELDS, self.query),
                "queue_totals": self.statistics.lengths(NODE, (ready + held, ready, held),
                                                        self.query),
                "churn_rates": self.churn_rates()}

    def churn_rates(self) -> dict[str, Any]:
        churn = self.statistics.server.broker.churn
        found: dict[str, Any] = {}
        for index, name in enumerate(CHURN):
            found[name] = getattr(churn, name)
            found[f"{name}_details"] = self.statistics.details(CHURN_KEY, index, self.query,
                                                               "msg_rates_age")
        return found

    def _lengths(self, queues: Iterable[Queue]) -> tuple[int, int]:
        ready = held = 0
        unacked = self.unacked
        for q in queues:
            ready += q.message_count
            held += unacked.get(q, (0, 0))[0]
        return ready, held
