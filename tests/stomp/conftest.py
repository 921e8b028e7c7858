"""Fixtures for the STOMP tests: an embedded broker with a STOMP listener, stomp.py
connections to it (disconnected at the end), and an AMQP (pika) connection beside them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pika
import pytest
from support.processes import free_port
from support.stomp_clients import StompConnector, connections

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
    with connections(stomp_port) as open_connection:
        yield open_connection


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
