"""Ack modes (auto, client, client-individual), NACK with and without requeue, prefetch
credit and redelivery of what a dropped connection had not acked."""

from __future__ import annotations

import pytest
from support.stomp_clients import StompConnector

from amqpbroker.testing import EmbeddedBroker, wait_for


def fill(stomp_connect: StompConnector, queue: str, count: int) -> None:
    connection, collector = stomp_connect()
    for n in range(count):
        connection.send("/queue/" + queue, str(n), receipt=f"r{n}")
    collector.wait_receipt(f"r{count - 1}")


def ready(broker: EmbeddedBroker, queue: str) -> int:
    return broker.queue(queue).ready


def unacked(broker: EmbeddedBroker, queue: str) -> int:
    return broker.queue(queue).unacked


def test_client_acks_are_cumulative(stomp_connect: StompConnector,
                                    broker: EmbeddedBroker) -> None:
    fill(stomp_connect, "q", 3)
    connection, collector = stomp_connect()
    connection.subscribe("/queue/q", id="s", ack="client")
    messages = collector.wait_messages(3)
    assert messages[0].headers["ack"] == messages[0].headers["message-id"]
    connection.ack(messages[1].headers["ack"], receipt="acked")
    collector.wait_receipt("acked")
    assert unacked(broker, "q") == 1


def test_client_individual_acks_one(stomp_connect: StompConnector,
                                    broker: EmbeddedBroker) -> None:
    fill(stomp_connect, "q", 3)
    connection, collector = stomp_connect()
    connection.subscribe("/queue/q", id="s", ack="client-individual")
    messages = collector.wait_messages(3)
    connection.ack(messages[1].headers["ack"], receipt="acked")
    collector.wait_receipt("acked")
    assert unacked(broker, "q") == 2


@pytest.mark.parametrize("version", ["1.0", "1.1"])
def test_older_versions_ack_by_message_id(stomp_connect: StompConnector,
                                          broker: EmbeddedBroker, version: str) -> None:
    fill(stomp_connect, "q", 1)
    connection, collector = stomp_connect(version=version)
    connection.subscribe("/queue/q", id="s", ack="client-individual")
    [message] = collector.wait_messages(1)
    assert "ack" not in message.headers
    if version == "1.0":
        connection.ack(message.headers["message-id"], receipt="acked")
    else:
        connection.ack(message.headers["message-id"], "s", receipt="acked")
    collector.wait_receipt("acked")
    assert unacked(broker, "q") == 0


def test_nack_requeues_by_default_and_drops_with_requeue_false(
        stomp_connect: StompConnector, broker: EmbeddedBroker) -> None:
    fill(stomp_connect, "q", 1)
    connection, collector = stomp_connect()
    connection.subscribe("/queue/q", id="s", ack="client-individual")
    [first] = collector.wait_messages(1)
    assert first.headers["redelivered"] == "false"
    connection.nack(first.headers["ack"])
    second = collector.wait_messages(2)[1]
    assert second.headers["redelivered"] == "true"
    assert second.headers["ack"] != first.headers["ack"]
    connection.nack(second.headers["ack"], requeue="false", receipt="dropped")
    collector.wait_receipt("dropped")
    assert (ready(broker, "q"), unacked(broker, "q")) == (0, 0)


def test_unacked_messages_are_redelivered_when_the_connection_drops(
        stomp_connect: StompConnector, broker: EmbeddedBroker) -> None:
    fill(stomp_connect, "q", 2)
    connection, collector = stomp_connect()
    connection.subscribe("/queue/q", id="s", ack="client")
    collector.wait_messages(2)
    connection.disconnect()
    wait_for(lambda: ready(broker, "q") == 2, what="the unacked messages back in the queue")
    again, seen = stomp_connect()
    again.subscribe("/queue/q", id="s", ack="auto")
    assert {m.headers["redelivered"] for m in seen.wait_messages(2)} == {"true"}


def test_auto_ack_settles_on_delivery(stomp_connect: StompConnector,
                                      broker: EmbeddedBroker) -> None:
    fill(stomp_connect, "q", 2)
    connection, collector = stomp_connect()
    connection.subscribe("/queue/q", id="s")
    collector.wait_messages(2)
    wait_for(lambda: broker.queue("q").depth == 0, what="an empty queue")


def test_prefetch_count_limits_what_is_unacked(stomp_connect: StompConnector,
                                               broker: EmbeddedBroker) -> None:
    fill(stomp_connect, "q", 5)
    connection, collector = stomp_connect()
    connection.subscribe("/queue/q", id="s", ack="client-individual",
                         headers={"prefetch-count": "2"})
    first = collector.wait_messages(2)
    wait_for(lambda: unacked(broker, "q") == 2, what="two unacked")
    assert ready(broker, "q") == 3 and len(collector.messages) == 2
    connection.ack(first[0].headers["ack"])
    collector.wait_messages(3)
    wait_for(lambda: ready(broker, "q") == 2, what="one more delivered")
