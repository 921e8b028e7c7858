"""Peers that abort with a TCP RST (SO_LINGER 0) at each stage of the connection."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

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

LINGER_ZERO = struct.pack("ii", 1, 0)


@pytest.fixture(scope="module")
def broker() -> Iterator[EmbeddedBroker]:
    with module_broker(handshake_timeout=2.0) as running:
        yield running


def _reset(conn: RawConnection) -> None:
    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ZERO)
    conn.close()


def _abort(broker: EmbeddedBroker, stage: str) -> None:
    conn = RawConnection(broker.host, broker.port)
    try:
        if stage == "partial-header":
            conn.send(b"AMQ")
        elif stage == "header":
            conn.send(PROTOCOL_HEADER)
        elif stage == "after-start":
            conn.send(PROTOCOL_HEADER)
            conn.expect(commands.Connection.Start)
        elif stage == "partial-start-ok":
            conn.send(PROTOCOL_HEADER + start_ok_bytes()[:25])
        elif stage == "open":
            conn.handshake()
            conn.open_channel(1)
    finally:
        _reset(conn)


STAGES = ["after-start", "open", "partial-start-ok", "header", "partial-header", "connect"]


@pytest.mark.parametrize("stage", STAGES)
def test_reset_at_stage(broker: EmbeddedBroker, stage: str) -> None:
    """An RST at any point ends that connection only; the listener keeps accepting."""
    _abort(broker, stage)
    wait_no_clients(broker)
    assert_serves(broker)


def test_many_resets_from_threads(broker: EmbeddedBroker) -> None:
    stages = [STAGES[i % len(STAGES)] for i in range(200)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda stage: _abort(broker, stage), stages))
    wait_no_clients(broker)
    assert_serves(broker)
