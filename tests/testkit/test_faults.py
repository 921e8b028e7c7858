"""Fault injection for tests of client resilience, seen through real pika clients: a
forced close, a dropped socket, blocked publishers, refused connections and a restart
that keeps what is durable; and a teardown that does not wait for open clients."""

from __future__ import annotations

import time

import pika
import pytest
from pika.exceptions import AMQPConnectionError, ConnectionClosedByBroker, StreamLostError

from amqpbroker.testing import EmbeddedBroker, broker_in_thread, wait_for

pytestmark = pytest.mark.timeout(30)


def connect(broker: EmbeddedBroker, **options: str) -> pika.BlockingConnection:
    query = "&".join(f"{k}={v}" for k, v in options.items())
    return pika.BlockingConnection(pika.URLParameters(broker.url + ("?" + query if query
                                                                    else "")))


def test_close_connection_with_a_code(amqp_broker: EmbeddedBroker) -> None:
    connection = connect(amqp_broker)
    [info] = amqp_broker.wait_for_connections(1)
    amqp_broker.close_connection(info, 320, "maintenance")
    with pytest.raises(ConnectionClosedByBroker) as closed:
        connection.process_data_events(time_limit=5)
    assert (closed.value.reply_code, closed.value.reply_text) == (
        320, "CONNECTION_FORCED - maintenance")
    amqp_broker.wait_for_connections(0)


def test_drop_connection_without_a_close(amqp_broker: EmbeddedBroker) -> None:
    connection = connect(amqp_broker)
    channel = connection.channel()
    channel.queue_declare("held")
    channel.basic_publish("", "held", b"m")
    channel.basic_consume("held", lambda *args: None)
    wait_for(lambda: amqp_broker.queue("held").unacked == 1, what="the delivery")
    [info] = amqp_broker.connections()
    amqp_broker.drop_connection(info.name)
    with pytest.raises(StreamLostError):
        for _ in range(50):  # the first pass may only run the consumer's callback
            connection.process_data_events(time_limit=0.1)
    amqp_broker.wait_for_connections(0)
    assert amqp_broker.wait_for_message("held").redelivered  # the broker requeued it


def test_block_and_unblock_publishers(amqp_broker: EmbeddedBroker) -> None:
    connection = connect(amqp_broker)
    events: list[str] = []
    connection.add_on_connection_blocked_callback(
        lambda _conn, frame: events.append(frame.method.reason))
    connection.add_on_connection_unblocked_callback(lambda *_: events.append("unblocked"))
    channel = connection.channel()
    channel.queue_declare("q")
    amqp_broker.block_publishers()
    channel.basic_publish("", "q", b"held back")
    wait_for(lambda: connection.process_data_events(0.05) or events, what="connection.blocked")
    assert events == ["low on memory"]
    assert amqp_broker.queue("q").ready == 0
    amqp_broker.unblock_publishers()
    wait_for(lambda: connection.process_data_events(0.05) or len(events) == 2,
             what="connection.unblocked")
    assert events[1] == "unblocked"
    amqp_broker.wait_for_queue_depth("q", 1)
    connection.close()


def test_refuse_connections_for_a_while(amqp_broker: EmbeddedBroker) -> None:
    amqp_broker.refuse_connections(30)
    with pytest.raises(AMQPConnectionError):
        connect(amqp_broker, connection_attempts="1")
    amqp_broker.refuse_connections(0)
    connect(amqp_broker).close()


def test_restart_keeps_durable_state(tmp_path) -> None:
    with broker_in_thread(data_dir=str(tmp_path)) as broker:
        connection = connect(broker)
        channel = connection.channel()
        channel.confirm_delivery()
        channel.queue_declare("kept", durable=True)
        channel.queue_declare("gone")
        channel.basic_publish("", "kept", b"persistent", pika.BasicProperties(delivery_mode=2))
        channel.basic_publish("", "kept", b"transient")
        port = broker.port
        broker.restart()
        with pytest.raises((StreamLostError, ConnectionClosedByBroker)):
            connection.process_data_events(time_limit=5)
        assert broker.port == port
        assert [q.name for q in broker.queues()] == ["kept"]
        assert [m.body for m in broker.messages("kept")] == [b"persistent"]
        connect(broker).close()  # the same URL works again


def test_restart_without_a_data_directory_forgets(amqp_broker: EmbeddedBroker) -> None:
    connection = connect(amqp_broker)
    connection.channel().queue_declare("q", durable=True)
    connection.close()
    amqp_broker.restart()
    assert amqp_broker.queues() == []


def test_teardown_does_not_wait_for_open_clients() -> None:
    with broker_in_thread() as broker:
        connections = [connect(broker) for _ in range(3)]
        for connection in connections:
            connection.channel().queue_declare("", exclusive=True)
        started = time.monotonic()
    took = time.monotonic() - started
    assert took < 0.5, f"teardown took {took:.3f}s"  # a loose bound: the grace was 2 s
    for connection in connections:
        with pytest.raises((ConnectionClosedByBroker, StreamLostError)):
            connection.process_data_events(time_limit=5)
