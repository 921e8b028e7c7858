"""Property: any bytes after a valid handshake end in a Close or a closed socket, never a crash."""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import Iterator

import pytest
from hostile_support import (
    CLIENT_ERROR_CODES,
    FRAME_END,
    RawConnection,
    assert_serves,
    module_broker,
    raw_frame,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amqpbroker.testing import EmbeddedBroker

QUIET = 0.25  # how long to wait for a reaction before ending our side of the stream

KNOWN_METHODS = [(10, 50), (10, 51), (20, 10), (20, 40), (20, 41), (40, 10), (40, 20),
                 (50, 10), (50, 20), (50, 30), (50, 40), (50, 50), (60, 10), (60, 20),
                 (60, 30), (60, 40), (60, 70), (60, 80), (60, 90), (60, 110), (60, 120),
                 (85, 10), (90, 10), (90, 20), (90, 30)]


@pytest.fixture(scope="module")
def broker() -> Iterator[EmbeddedBroker]:
    with module_broker() as running:
        yield running


raw_bytes = st.binary(min_size=1, max_size=300)
channels = st.sampled_from([0, 1, 2, 2047, 2048, 65535])
framed = st.builds(raw_frame, st.sampled_from([1, 2, 3, 8, 0, 4, 255]), channels,
                   st.binary(max_size=300))
known_method = st.builds(
    lambda ids, channel, args: raw_frame(1, channel, struct.pack(">HH", *ids) + args),
    st.sampled_from(KNOWN_METHODS), channels, st.binary(max_size=200))
content = st.builds(
    lambda channel, size, body: (
        raw_frame(1, channel, b"\x00\x3c\x00\x28\x00\x00\x00\x01q\x00")
        + raw_frame(2, channel, struct.pack(">HHQH", 60, 0, size, 0)) + raw_frame(3, channel, body)
    ), st.sampled_from([1, 2]), st.integers(0, 2**64 - 1), st.binary(max_size=100))
inputs = st.lists(st.one_of(raw_bytes, framed, known_method, content), min_size=1,
                  max_size=4).map(b"".join)


def _outcome(conn: RawConnection) -> str:
    """What the broker did with the input: 'close <code>', 'eof', or 'silent' if it waited
    for more; a silent broker must still close its side once we end ours."""
    conn.sock.settimeout(QUIET)
    try:
        closed = conn.wait_closed(timeout=QUIET)
    except TimeoutError:
        conn.sock.shutdown(socket.SHUT_WR)
        closed = conn.wait_closed(timeout=5.0)
        if closed.bare:
            return "eof after our shutdown"
    if closed.bare:
        return "eof"
    assert closed.code in CLIENT_ERROR_CODES, str(closed)
    return f"close {closed.code}"


@settings(max_examples=50, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(data=inputs)
def test_random_bytes_after_handshake(broker: EmbeddedBroker, data: bytes) -> None:
    conn = RawConnection(broker.host, broker.port)
    try:
        conn.handshake()
        conn.open_channel(1)
        with contextlib.suppress(OSError):  # the broker may have closed on an early part
            conn.send(data)
        _outcome(conn)
    finally:
        conn.close()
    assert_serves(broker)


def test_frame_end_bytes_alone(broker: EmbeddedBroker) -> None:
    """A stream of frame-end octets (no frame) is an unknown frame type, at once."""
    conn = RawConnection(broker.host, broker.port)
    try:
        conn.handshake()
        conn.send(bytes([FRAME_END]) * 16)
        assert _outcome(conn) == "close 501"
    finally:
        conn.close()
    assert_serves(broker)
