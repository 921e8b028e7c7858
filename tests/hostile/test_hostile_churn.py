"""A thousand connections abandoned mid-handshake leave no connection objects or tasks behind."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from hostile_support import (
    PROTOCOL_HEADER,
    RawConnection,
    assert_serves,
    client_count,
    module_broker,
    start_ok_bytes,
    wait_for,
    wait_no_clients,
)
from pamqp import commands

from amqpbroker.testing import EmbeddedBroker

CONNECTIONS = 1000
THREADS = 4
TASK_SLACK = 3


@pytest.fixture(scope="module")
def broker() -> Iterator[EmbeddedBroker]:
    with module_broker(handshake_timeout=2.0) as running:
        yield running


def _task_count(broker: EmbeddedBroker) -> int:
    return broker.call(lambda: len(asyncio.all_tasks()))


def _drop(broker: EmbeddedBroker, stage: int) -> None:
    """Connect, get part of the way through the handshake, close (FIN, not RST)."""
    conn = RawConnection(broker.host, broker.port)
    try:
        if stage == 1:
            conn.send(PROTOCOL_HEADER)
        elif stage == 2:
            conn.send(PROTOCOL_HEADER + start_ok_bytes()[:17])
        elif stage == 3:
            conn.send(PROTOCOL_HEADER)
            conn.expect(commands.Connection.Start)
            conn.send(start_ok_bytes()[:-1])
        elif stage == 4:
            conn.send(PROTOCOL_HEADER)
            conn.expect(commands.Connection.Start)
            conn.send(start_ok_bytes())
            conn.expect(commands.Connection.Tune)
    finally:
        conn.close()


def test_dropped_handshakes_leave_nothing_behind(broker: EmbeddedBroker) -> None:
    assert_serves(broker)
    wait_no_clients(broker)
    baseline = _task_count(broker)

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(lambda i: _drop(broker, i % 5), range(CONNECTIONS)))

    wait_for(lambda: client_count(broker) == 0, 10.0, "every dropped connection to go")
    wait_for(lambda: _task_count(broker) <= baseline + TASK_SLACK, 10.0,
             f"the task count to return to {baseline} (+{TASK_SLACK})")
    assert_serves(broker)
    wait_no_clients(broker)
    assert _task_count(broker) <= baseline + TASK_SLACK


def test_clients_count_while_connections_are_held(broker: EmbeddedBroker) -> None:
    """The counter the test above relies on does see live handshakes."""
    conns = [RawConnection(broker.host, broker.port) for _ in range(10)]
    try:
        for conn in conns:
            conn.send(PROTOCOL_HEADER)
            conn.expect(commands.Connection.Start)
        assert client_count(broker) == 10
    finally:
        for conn in conns:
            conn.close()
    wait_no_clients(broker)
    assert_serves(broker)
