"""Fixtures of the cross-protocol tests: one broker with its MQTT and STOMP listeners on
free loopback ports, paho clients, stomp.py connections and a pika channel on it, all
closed before it stops."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pika
import pytest
from support.mqtt_clients import Client, clients
from support.processes import free_port
from support.stomp_clients import StompConnector, connections

from amqpbroker.testing import EmbeddedBroker, broker_in_thread


@pytest.fixture
def gateway() -> Iterator[EmbeddedBroker]:
    with broker_in_thread(mqtt_port=free_port(), stomp_port=free_port()) as broker:
        yield broker


@pytest.fixture
def mqtt_client(gateway: EmbeddedBroker) -> Iterator[Callable[..., Client]]:
    with clients(gateway.server.frontend_ports["mqtt"]) as open_client:
        yield open_client


@pytest.fixture
def stomp_connect(gateway: EmbeddedBroker) -> Iterator[StompConnector]:
    with connections(gateway.server.frontend_ports["stomp"]) as open_connection:
        yield open_connection


@pytest.fixture
def amqp(gateway: EmbeddedBroker) -> Iterator[pika.adapters.blocking_connection.BlockingChannel]:
    connection = pika.BlockingConnection(pika.URLParameters(gateway.url))
    try:
        yield connection.channel()
    finally:
        if connection.is_open:
            connection.close()
