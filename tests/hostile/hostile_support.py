"""Raw-socket AMQP client, hand-built wire encodings and health checks for hostile tests."""

from __future__ import annotations

import contextlib
import logging
import struct
import uuid
from collections.abc import Iterator
from typing import Any

import pika
from support.client import TIMEOUT, Closed, RawConnection, describe, start_ok_bytes
from support.wire import (
    EMPTY_TABLE,
    FRAME_BODY,
    FRAME_END,
    FRAME_HEADER,
    FRAME_HEARTBEAT,
    FRAME_METHOD,
    PROTOCOL_HEADER,
    body_frame,
    header_frame,
    heartbeat_frame,
    longstr,
    method_frame,
    method_payload,
    nested_table,
    raw_frame,
    shortstr,
    table,
)

from amqpbroker.testing import EmbeddedBroker, broker_in_thread, wait_for

# The wire toolkit the test modules import from here.
__all__ = [
    "EMPTY_TABLE",
    "FRAME_BODY",
    "FRAME_END",
    "FRAME_HEADER",
    "FRAME_HEARTBEAT",
    "FRAME_METHOD",
    "PROTOCOL_HEADER",
    "TIMEOUT",
    "Closed",
    "RawConnection",
    "body_frame",
    "describe",
    "header_frame",
    "heartbeat_frame",
    "longstr",
    "method_frame",
    "method_payload",
    "nested_table",
    "raw_frame",
    "shortstr",
    "start_ok_bytes",
    "table",
]

# Every reply code a Connection.Close for a client's mistake may carry; 541 (internal
# error) is deliberately absent: it means the broker tripped over its own feet.
CLIENT_ERROR_CODES = {320, 402, 403, 404, 405, 406, 501, 502, 503, 504, 505, 506, 530, 540}


# --- waiting -------------------------------------------------------------------------------


def channel_open(channel: int) -> bytes:
    return method_frame(channel, 20, 10, shortstr(b""))


def queue_declare_args(name: bytes, arguments: bytes = EMPTY_TABLE, bits: int = 0) -> bytes:
    """Queue.Declare arguments: ticket, queue, the five bits, arguments."""
    return struct.pack(">H", 0) + shortstr(name) + bytes([bits]) + arguments


def queue_declare(channel: int, name: bytes, arguments: bytes = EMPTY_TABLE) -> bytes:
    return method_frame(channel, 50, 10, queue_declare_args(name, arguments))


def basic_publish(channel: int, exchange: bytes = b"", routing_key: bytes = b"q") -> bytes:
    return method_frame(channel, 60, 40, struct.pack(">H", 0) + shortstr(exchange)
                        + shortstr(routing_key) + b"\x00")


@contextlib.contextmanager
def raw_connection(broker: EmbeddedBroker, timeout: float = TIMEOUT) -> Iterator[RawConnection]:
    conn = RawConnection(broker.host, broker.port, timeout)
    try:
        yield conn
    finally:
        conn.close()


def assert_connection_error(closed: Closed, *codes: int) -> None:
    assert closed.code in codes, f"expected a Connection.Close with {codes}, got {closed}"


# --- broker health -------------------------------------------------------------------------------


def assert_serves(broker: EmbeddedBroker) -> None:
    """A normal client (pika) can still declare, publish and get on this broker."""
    params = pika.URLParameters(broker.url)
    params.socket_timeout = TIMEOUT
    params.blocked_connection_timeout = TIMEOUT
    params.connection_attempts = 1
    params.heartbeat = 0
    connection = pika.BlockingConnection(params)
    try:
        channel = connection.channel()
        queue = channel.queue_declare("", exclusive=True).method.queue
        body = uuid.uuid4().bytes
        channel.basic_publish("", queue, body)
        method, _, got = channel.basic_get(queue, auto_ack=True)
        assert method is not None, "the message did not arrive"
        assert got == body
    finally:
        connection.close()


def client_count(broker: EmbeddedBroker) -> int:
    return broker.call(lambda: len(broker.server.clients))


def wait_no_clients(broker: EmbeddedBroker, timeout: float = TIMEOUT) -> None:
    wait_for(lambda: client_count(broker) == 0, timeout,
             "the broker to forget every connection")


class ErrorRecords(logging.Handler):
    """Collects ERROR (and worse) records: the broker logs its own failures that way."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def describe(self) -> str:
        return "; ".join(f"{r.name}: {r.getMessage()} {r.exc_info[1]!r}" if r.exc_info
                         else f"{r.name}: {r.getMessage()}" for r in self.records)


@contextlib.contextmanager
def module_broker(**overrides: Any) -> Iterator[EmbeddedBroker]:
    """A broker for one test module, on an ephemeral loopback port."""
    with broker_in_thread(**overrides) as broker:
        yield broker
