"""Channel floods on one connection: channel_max (2047) is enforced, the broker survives."""

from __future__ import annotations

import struct
import threading
from collections.abc import Iterator

import pytest
from hostile_support import (
    RawConnection,
    assert_connection_error,
    assert_serves,
    channel_open,
    method_frame,
    module_broker,
    wait_no_clients,
)
from pamqp import commands

from amqpbroker.testing import EmbeddedBroker

CHANNEL_MAX = 2047
CHANNEL_ERROR, NOT_ALLOWED = 504, 530


@pytest.fixture(scope="module")
def broker() -> Iterator[EmbeddedBroker]:
    with module_broker() as running:
        yield running


def _pipelined(channels: range, chunk: int = 4096) -> Iterator[bytes]:
    for start in range(channels.start, channels.stop, chunk):
        yield b"".join(channel_open(n) for n in range(start, min(start + chunk, channels.stop)))


def _count_open_oks(conn: RawConnection, expected: int) -> tuple[int, commands.Connection.Close
                                                                 | None]:
    """Read Open-Oks until `expected` arrived or a Connection.Close or EOF ended it."""
    seen = 0
    while seen < expected:
        received = conn.read_method(timeout=10.0)
        if received is None:
            return seen, None
        channel, value = received
        if isinstance(value, commands.Connection.Close):
            return seen, value
        assert isinstance(value, commands.Channel.OpenOk), (channel, value)
        seen += 1
    return seen, None


def test_channel_max_opens_all_succeed(broker: EmbeddedBroker) -> None:
    conn = RawConnection(broker.host, broker.port, timeout=10.0)
    try:
        tune = conn.handshake()
        assert tune.channel_max == CHANNEL_MAX
        for data in _pipelined(range(1, CHANNEL_MAX + 1)):
            conn.send(data)
        seen, close = _count_open_oks(conn, CHANNEL_MAX)
        assert close is None, close
        assert seen == CHANNEL_MAX
        # one more (on a channel number inside the limit is impossible: all are taken)
        conn.send(channel_open(CHANNEL_MAX + 1))
        closed = conn.wait_closed(timeout=10.0, strict=True)
    finally:
        conn.close()
    assert_connection_error(closed, NOT_ALLOWED, CHANNEL_ERROR)
    wait_no_clients(broker)
    assert_serves(broker)


def test_65535_pipelined_channel_opens(broker: EmbeddedBroker) -> None:
    """Every channel number at once in large writes: the first 2047 open, then a
    530 (or 504) Connection.Close; the rest is discarded."""
    conn = RawConnection(broker.host, broker.port, timeout=10.0)
    errors: list[BaseException] = []

    def flood() -> None:
        try:
            for data in _pipelined(range(1, 65536), chunk=8192):
                conn.send(data)
        except OSError as exc:  # the broker may close before the flood ends
            errors.append(exc)

    try:
        conn.handshake()
        sender = threading.Thread(target=flood, daemon=True)
        sender.start()
        seen, close = _count_open_oks(conn, 65535)
        sender.join(timeout=20.0)
        assert not sender.is_alive(), "the broker stopped reading the flood"
        assert close is not None, f"no Connection.Close after {seen} Open-Oks"
        assert close.reply_code in (NOT_ALLOWED, CHANNEL_ERROR), close
        assert seen <= CHANNEL_MAX
        if close.reply_code == NOT_ALLOWED:
            assert seen == CHANNEL_MAX
        # No Close-Ok: it would reach the broker behind a frame that was cut in two when
        # the error cleared the read buffer (see test_hostile_frames, split-frame Close-Ok).
    finally:
        conn.close()
    wait_no_clients(broker)
    assert_serves(broker)


def test_channel_reopen_churn(broker: EmbeddedBroker) -> None:
    """Open and close the same channel many times in one pipelined write."""
    close = method_frame(5, 20, 40, struct.pack(">HBHH", 200, 0, 0, 0))
    conn = RawConnection(broker.host, broker.port, timeout=10.0)
    try:
        conn.handshake()
        conn.send((channel_open(5) + close) * 5000)
        for _ in range(5000):
            conn.expect(commands.Channel.OpenOk, timeout=10.0)
            conn.expect(commands.Channel.CloseOk, timeout=10.0)
        conn.send_method(commands.Connection.Close(200, "bye", 0, 0))
        conn.expect(commands.Connection.CloseOk)
    finally:
        conn.close()
    wait_no_clients(broker)
    assert_serves(broker)
