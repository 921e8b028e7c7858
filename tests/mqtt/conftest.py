"""Fixtures of the MQTT tests: a broker with its MQTT listener on a free loopback port,
paho clients and raw sockets that are closed before it stops, and a pika connection."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pika
import pytest
from support.mqtt_clients import V311, Client, RawMqtt, clients
from support.processes import free_port

from amqpbroker.testing import EmbeddedBroker, broker_in_thread


@pytest.fixture
def mqtt_broker() -> Iterator[EmbeddedBroker]:
    with broker_in_thread(mqtt_port=free_port()) as broker:
        yield broker


def mqtt_port(broker: EmbeddedBroker) -> int:
    return broker.server.frontend_ports["mqtt"]


@pytest.fixture
def mqtt_client(mqtt_broker: EmbeddedBroker) -> Iterator[Callable[..., Client]]:
    """Opens paho clients to `mqtt_broker` (connected: the CONNACK is in `connected()`)."""
    with clients(mqtt_port(mqtt_broker)) as open_client:
        yield open_client


@pytest.fixture
def raw(mqtt_broker: EmbeddedBroker) -> Iterator[Callable[..., RawMqtt]]:
    """Opens raw MQTT sockets to `mqtt_broker` (closed at the end)."""
    opened: list[RawMqtt] = []

    def open_raw(version: int = V311) -> RawMqtt:
        conn = RawMqtt(mqtt_port(mqtt_broker), version)
        opened.append(conn)
        return conn

    yield open_raw
    for conn in opened:
        conn.close()


@pytest.fixture
def amqp(mqtt_broker: EmbeddedBroker) -> Iterator[pika.BlockingConnection]:
    """A pika connection to `mqtt_broker`."""
    connection = pika.BlockingConnection(pika.URLParameters(mqtt_broker.url))
    yield connection
    if connection.is_open:
        connection.close()
