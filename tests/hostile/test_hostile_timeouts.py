"""Idle and trickling peers are dropped at the handshake timeout, however they drip bytes."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from hostile_support import (
    PROTOCOL_HEADER,
    RawConnection,
    assert_serves,
    module_broker,
    start_ok_bytes,
    wait_no_clients,
)
from pamqp import commands

from amqpbroker.testing import EmbeddedBroker

HANDSHAKE_TIMEOUT = 1.0
SLACK = 2.0  # the close must come by HANDSHAKE_TIMEOUT + SLACK


@pytest.fixture(scope="module")
def broker() -> Iterator[EmbeddedBroker]:
    with module_broker(handshake_timeout=HANDSHAKE_TIMEOUT) as running:
        yield running


def _seconds_until_closed(conn: RawConnection, started: float) -> float:
    conn.wait_eof(timeout=HANDSHAKE_TIMEOUT + SLACK + 1)
    return time.monotonic() - started


STALLS = {
    "nothing": b"",
    "partial-header": b"AMQP\x00",
    "header": PROTOCOL_HEADER,
    "header-partial-start-ok": PROTOCOL_HEADER + start_ok_bytes()[:30],
}


@pytest.mark.parametrize("data", STALLS.values(), ids=STALLS.keys())
def test_stalled_handshake_closed_at_timeout(broker: EmbeddedBroker, data: bytes) -> None:
    conn = RawConnection(broker.host, broker.port)
    started = time.monotonic()
    try:
        if data:
            conn.send(data)
        elapsed = _seconds_until_closed(conn, started)
    finally:
        conn.close()
    assert HANDSHAKE_TIMEOUT - 0.2 <= elapsed <= HANDSHAKE_TIMEOUT + SLACK, elapsed
    wait_no_clients(broker)
    assert_serves(broker)


def test_stalled_after_tune_closed_at_timeout(broker: EmbeddedBroker) -> None:
    conn = RawConnection(broker.host, broker.port)
    started = time.monotonic()
    try:
        conn.send(PROTOCOL_HEADER)
        conn.expect(commands.Connection.Start)
        conn.send(start_ok_bytes())
        conn.expect(commands.Connection.Tune)
        elapsed = _seconds_until_closed(conn, started)
    finally:
        conn.close()
    assert HANDSHAKE_TIMEOUT - 0.2 <= elapsed <= HANDSHAKE_TIMEOUT + SLACK, elapsed
    assert_serves(broker)


def test_slowloris_is_not_extended_by_trickling(broker: EmbeddedBroker) -> None:
    """Header and Start-Ok, one byte every 0.2 s: every byte arrives well inside any
    per-read timeout, but the handshake as a whole must still end at the timeout."""
    data = PROTOCOL_HEADER + start_ok_bytes()
    assert len(data) * 0.2 > 5 * HANDSHAKE_TIMEOUT  # it could not finish in time
    conn = RawConnection(broker.host, broker.port)
    started = time.monotonic()
    closed_after = None
    try:
        for i in range(len(data)):
            try:
                conn.send(data[i:i + 1])
            except OSError:  # reset by the broker
                closed_after = time.monotonic() - started
                break
            if conn.readable(0.2):
                try:
                    chunk = conn.sock.recv(65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    closed_after = time.monotonic() - started
                    break
            if time.monotonic() - started > HANDSHAKE_TIMEOUT + SLACK:
                break
    finally:
        conn.close()
    assert closed_after is not None, "still open well after the handshake timeout"
    assert HANDSHAKE_TIMEOUT - 0.2 <= closed_after <= HANDSHAKE_TIMEOUT + SLACK, closed_after
    wait_no_clients(broker)
    assert_serves(broker)


def test_many_idle_connections_all_dropped(broker: EmbeddedBroker) -> None:
    conns = [RawConnection(broker.host, broker.port) for _ in range(50)]
    try:
        for conn in conns[::2]:
            conn.send(PROTOCOL_HEADER)
        deadline = time.monotonic() + HANDSHAKE_TIMEOUT + SLACK + 1
        for conn in conns:
            conn.wait_eof(timeout=max(deadline - time.monotonic(), 0.01))
    finally:
        for conn in conns:
            conn.close()
    wait_no_clients(broker)
    assert_serves(broker)


def test_normal_client_unaffected_by_a_concurrent_stall(broker: EmbeddedBroker) -> None:
    conn = RawConnection(broker.host, broker.port)
    try:
        conn.send(PROTOCOL_HEADER)
        assert_serves(broker)
        conn.wait_eof(timeout=HANDSHAKE_TIMEOUT + SLACK)
    finally:
        conn.close()
