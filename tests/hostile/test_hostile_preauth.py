"""Hostile input before authentication: foreign protocol headers, garbage, truncation."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator

import pytest
from hostile_support import (
    PROTOCOL_HEADER,
    RawConnection,
    assert_serves,
    longstr,
    method_frame,
    module_broker,
    raw_connection,
    shortstr,
    start_ok_bytes,
    table,
    wait_no_clients,
)
from pamqp import commands

from amqpbroker.testing import EmbeddedBroker

HANDSHAKE_TIMEOUT = 2.0

TLS_CLIENT_HELLO = bytes.fromhex(
    "16030100c4010000c00303"  # record: handshake, TLS 1.0 framing; ClientHello, TLS 1.2
    + "5f" * 32  # random
    + "00"  # session id length
    + "0004c02fc030"  # cipher suites
    + "0100"  # compression: null
    + "0093" + "00" * 0x93  # extensions (zeroed)
)

FOREIGN_HEADERS = {
    "http-get": b"GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: curl/8\r\n\r\n",
    "tls-client-hello": TLS_CLIENT_HELLO,
    "amqp-1.0": b"AMQP\x00\x01\x00\x00",
    "amqp-1.0-sasl": b"AMQP\x03\x01\x00\x00",
    "amqp-0-9-0": b"AMQP\x00\x00\x09\x00",
    "amqp-0-10": b"AMQP\x01\x01\x00\x0a",
    "amqx": b"AMQX\x00\x00\x09\x01",
    "zeros": b"\x00" * 8,
    "high-bytes": b"\xff" * 64,
}


@pytest.fixture(scope="module")
def broker() -> Iterator[EmbeddedBroker]:
    with module_broker(handshake_timeout=HANDSHAKE_TIMEOUT) as running:
        yield running


@pytest.mark.parametrize("data", FOREIGN_HEADERS.values(), ids=FOREIGN_HEADERS.keys())
def test_foreign_header_gets_our_header_and_a_close(broker: EmbeddedBroker, data: bytes) -> None:
    with raw_connection(broker) as conn:
        conn.send(data)
        started = time.monotonic()
        received = conn.wait_eof(timeout=HANDSHAKE_TIMEOUT / 2)
        assert received == PROTOCOL_HEADER
        assert time.monotonic() - started < HANDSHAKE_TIMEOUT / 2
    assert_serves(broker)


@pytest.mark.parametrize("data", FOREIGN_HEADERS.values(), ids=FOREIGN_HEADERS.keys())
def test_foreign_header_one_byte_at_a_time(broker: EmbeddedBroker, data: bytes) -> None:
    with raw_connection(broker) as conn:
        for i in range(8):
            conn.send(data[i:i + 1])
            time.sleep(0.002)
        assert conn.wait_eof(timeout=HANDSHAKE_TIMEOUT / 2) == PROTOCOL_HEADER
    assert_serves(broker)


def _start(conn: RawConnection) -> None:
    conn.send(PROTOCOL_HEADER)
    conn.expect(commands.Connection.Start)


GARBAGE = {
    "http-after-header": b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "frame-end-bytes": b"\xce" * 64,
    "zeros": b"\x00" * 64,
    "unknown-frame-type": b"\x09\x00\x00\x00\x00\x00\x05hello\xce",
    "bad-frame-end": b"\x01\x00\x00\x00\x00\x00\x04\x00\x0a\x00\x0bX",
    "pre-auth-frame-too-large": struct.pack(">BHI", 1, 0, 5000) + b"\x00" * 5001,
    "frame-claims-4gib": struct.pack(">BHI", 1, 0, 0xFFFFFFFF) + b"\x00" * 64,
    "body-before-auth": b"\x03\x00\x01\x00\x00\x00\x03abc\xce",
    "channel-method-before-auth": method_frame(1, 20, 10, shortstr(b"")),
    "queue-declare-on-channel-0": method_frame(0, 50, 10, b"\x00\x00\x01q\x00\x00\x00\x00\x00"),
    "unknown-method": method_frame(0, 99, 99, b"xyz"),
    "truncated-start-ok": method_frame(0, 10, 11, b"\x00\x00\x00\x10abc"),
    "start-ok-response-claims-4gib": method_frame(
        0, 10, 11, table(b"") + shortstr(b"PLAIN") + struct.pack(">I", 0xFFFFFFFF)
        + b"\x00guest\x00guest" + shortstr(b"en_US")),
    "start-ok-bad-mechanism": method_frame(
        0, 10, 11, table(b"") + shortstr(b"EXTERNAL") + longstr(b"") + shortstr(b"en_US")),
    "tune-ok-before-start-ok": method_frame(0, 10, 31, struct.pack(">HIH", 2047, 131072, 0)),
    "second-protocol-header": PROTOCOL_HEADER,
}


@pytest.mark.parametrize("data", GARBAGE.values(), ids=GARBAGE.keys())
def test_garbage_after_header_closes_without_close_frame(broker: EmbeddedBroker,
                                                         data: bytes) -> None:
    """A handshake error gets no Close frame: the socket just closes (RabbitMQ: RST)."""
    with raw_connection(broker) as conn:
        _start(conn)
        conn.send(data)
        started = time.monotonic()
        leftover = conn.wait_eof(timeout=HANDSHAKE_TIMEOUT + 2)
        assert leftover == b"", f"unexpected reply to garbage: {leftover!r}"
        assert time.monotonic() - started < HANDSHAKE_TIMEOUT + 1
    wait_no_clients(broker)
    assert_serves(broker)


TRUNCATIONS = {
    "partial-header": b"AMQ",
    "header": PROTOCOL_HEADER,
    "header-partial-frame-header": PROTOCOL_HEADER + b"\x01\x00",
    "header-partial-start-ok": PROTOCOL_HEADER + start_ok_bytes()[:20],
    "header-start-ok-without-frame-end": PROTOCOL_HEADER + start_ok_bytes()[:-1],
}


@pytest.mark.parametrize("data", TRUNCATIONS.values(), ids=TRUNCATIONS.keys())
@pytest.mark.parametrize("how", ["shutdown", "close"])
def test_truncated_then_closed(broker: EmbeddedBroker, data: bytes, how: str) -> None:
    conn = RawConnection(broker.host, broker.port)
    try:
        conn.send(data)
        if how == "shutdown":
            conn.sock.shutdown(socket.SHUT_WR)
            conn.wait_eof()  # the broker closes its side as well
    finally:
        conn.close()
    wait_no_clients(broker)
    assert_serves(broker)


@pytest.mark.parametrize("how", ["shutdown", "close"])
def test_truncated_frame_after_open_then_closed(broker: EmbeddedBroker, how: str) -> None:
    conn = RawConnection(broker.host, broker.port)
    try:
        conn.handshake()
        conn.open_channel(1)
        frame = method_frame(1, 50, 10, b"\x00\x00\x05queue\x00\x00\x00\x00\x00")
        conn.send(frame[:-3])
        if how == "shutdown":
            conn.sock.shutdown(socket.SHUT_WR)
            assert conn.wait_eof() == b""
    finally:
        conn.close()
    wait_no_clients(broker)
    assert_serves(broker)
