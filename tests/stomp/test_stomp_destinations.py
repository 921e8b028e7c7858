"""Destinations as RabbitMQ's STOMP plugin has them: /queue, /amq/queue, /topic (durable
subscriptions across a restart), /exchange, /temp-queue replies and /reply-queue."""

from __future__ import annotations

from pathlib import Path

import pika
from support.processes import free_port
from support.stomp_clients import StompConnector, connect

from amqpbroker.testing import EmbeddedBroker, broker_in_thread, wait_for

Channel = pika.adapters.blocking_connection.BlockingChannel


def test_queue_destinations_are_declared_durable(stomp_connect: StompConnector,
                                                 broker: EmbeddedBroker) -> None:
    connection, collector = stomp_connect()
    connection.send("/queue/orders", "x", receipt="r",
                    headers={"x-max-length": "5", "x-queue-type": "classic"})
    collector.wait_receipt("r")
    queue = broker.queue("orders")
    assert (queue.durable, queue.auto_delete, queue.exclusive) == (True, False, False)
    assert queue.arguments == {"x-max-length": 5, "x-queue-type": "classic"}


def test_amq_queue_is_never_declared(stomp_connect: StompConnector, amqp: Channel) -> None:
    connection, collector = stomp_connect()
    connection.subscribe("/amq/queue/missing", id="s")
    error = collector.wait_error()
    assert error.headers["message"] == "not_found"
    assert error.body == "NOT_FOUND - no queue 'missing' in vhost '/'"
    amqp.queue_declare("made", durable=False)
    other, seen = stomp_connect()
    other.subscribe("/amq/queue/made", id="s")
    other.send("/amq/queue/made", "hi")
    assert seen.wait_messages(1)[0].headers["destination"] == "/queue/made"


def test_exchange_destinations(stomp_connect: StompConnector, broker: EmbeddedBroker,
                               amqp: Channel) -> None:
    amqp.exchange_declare("logs", "direct")
    connection, collector = stomp_connect()
    connection.subscribe("/exchange/logs/error", id="s", receipt="sub")
    collector.wait_receipt("sub")
    [queue] = broker.queues()
    assert queue.name.startswith("stomp-subscription-") and len(queue.name) == 41
    assert (queue.durable, queue.auto_delete) == (False, True)
    connection.send("/exchange/logs/error", "bad")
    connection.send("/exchange/logs/info", "fine")
    [message] = collector.wait_messages(1)
    assert message.headers["destination"] == "/exchange/logs/error"
    connection.unsubscribe("s", receipt="unsub")
    collector.wait_receipt("unsub")
    assert broker.queues() == []


def test_temp_queue_replies(stomp_connect: StompConnector, amqp: Channel) -> None:
    server, served = stomp_connect()
    server.subscribe("/queue/rpc", id="rpc")
    client, answers = stomp_connect()
    client.send("/queue/rpc", "ping", headers={"reply-to": "/temp-queue/answers"})
    [request] = served.wait_messages(1)
    reply_to = request.headers["reply-to"]
    assert reply_to.startswith("/reply-queue/amq.gen-")
    server.send(reply_to, "pong")
    [answer] = answers.wait_messages(1)
    assert answer.body == "pong"
    assert answer.headers["subscription"] == "/temp-queue/answers"
    amqp.basic_publish("", reply_to[len("/reply-queue/"):], b"from amqp")
    assert answers.wait_messages(2)[1].body == "from amqp"


def test_durable_topic_subscription_survives_a_restart(tmp_path: Path) -> None:
    port = free_port()
    with broker_in_thread(stomp_port=port, data_dir=str(tmp_path)) as broker:
        subscriber, seen = connect(port)
        subscriber.subscribe("/topic/alerts", id="keep", receipt="sub",
                             headers={"durable": "true", "auto-delete": "false"})
        seen.wait_receipt("sub")
        [queue] = broker.queues()
        subscriber.disconnect()
        publisher, sent = connect(port)
        publisher.send("/topic/alerts", "while away", headers={"persistent": "true"},
                       receipt="r")
        sent.wait_receipt("r")
        publisher.disconnect()
        broker.restart()
        assert broker.queue(queue.name).ready == 1
        again, seen_again = connect(port)
        again.subscribe("/topic/alerts", id="keep",
                        headers={"durable": "true", "auto-delete": "false"})
        [message] = seen_again.wait_messages(1)
        assert message.body == "while away"
        assert message.headers["persistent"] == "true"
        again.unsubscribe("keep", headers={"durable": "true"}, receipt="gone")
        seen_again.wait_receipt("gone")
        wait_for(lambda: broker.queues() == [], what="the durable subscription deleted")
        again.disconnect()


def test_durable_subscription_needs_an_id(stomp_connect: StompConnector) -> None:
    connection, collector = stomp_connect()
    connection.send_frame("SUBSCRIBE", {"destination": "/topic/x", "durable": "true"})
    error = collector.wait_error()
    assert error.headers["message"] == "Missing Header"
