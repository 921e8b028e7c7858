"""Fixtures for the STOMP tests: an embedded broker with a STOMP listener, stomp.py
connections to it (disconnected at the end), and an AMQP (pika) connection beside them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pika
import pytest
import stomp
from stomp_support import Collector, StompConnector, connect
from support.processes import free_port

from amqpbroker.testing import EmbeddedBroker, broker_in_thread

pytestmark = pytest.mark.timeout(60)

@pytest.fixture
def broker(tmp_path: Any) -> Iterator[EmbeddedBroker]:
    with broker_in_thread(stomp_port=free_port()) as embedded:
        yield embedded


@pytest.fixture
def stomp_port(broker: EmbeddedBroker) -> int:
    return broker.server.frontend_ports["stomp"]


@pytest.fixture
def stomp_connect(stomp_port: int) -> Iterator[StompConnector]:
    """Opens stomp.py connections to the broker; disconnects them at the end."""
    opened: list[stomp.Connection] = []

    def open_connection(**options: Any) -> tuple[stomp.Connection, Collector]:
        connection, collector = connect(stomp_port, **options)
        opened.append(connection)
        return connection, collector

    yield open_connection
    for connection in opened:
        if connection.is_connected():
            connection.disconnect()


@pytest.fixture
def amqp(broker: EmbeddedBroker) -> Iterator[pika.adapters.blocking_connection.BlockingChannel]:
    """A pika channel on the same broker."""
    connection = pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", broker.port, credentials=pika.PlainCredentials("guest", "guest")))
    try:
        yield connection.channel()
    finally:
        if connection.is_open:
            connection.close()
