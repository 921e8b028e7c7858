"""CONNECT, SEND and SUBSCRIBE on /queue and /topic with stomp.py, across STOMP and AMQP."""

from __future__ import annotations

import pika
import pytest
from support.stomp_clients import StompConnector

from amqpbroker.testing import EmbeddedBroker, wait_for


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_send_and_subscribe_on_a_queue(stomp_connect: StompConnector, version: str) -> None:
    connection, collector = stomp_connect(version=version)
    connection.subscribe("/queue/work", id="s1", ack="auto")
    connection.send("/queue/work", "hello", headers={"x-colour": "blue"})
    [message] = collector.wait_messages(1)
    assert message.body == "hello"
    assert message.headers["destination"] == "/queue/work"
    assert message.headers["x-colour"] == "blue"
    assert message.headers["message-id"].startswith("T_s1@@session-")
    if version != "1.0":
        assert message.headers["subscription"] == "s1"


def test_topic_fans_out_to_every_subscription(stomp_connect: StompConnector) -> None:
    first, first_seen = stomp_connect()
    second, second_seen = stomp_connect()
    first.subscribe("/topic/news.*", id="a")
    second.subscribe("/topic/news.sport", id="b")
    first.send("/topic/news.sport", "goal", receipt="r1")
    first_seen.wait_receipt("r1")
    assert first_seen.wait_messages(1)[0].headers["destination"] == "/topic/news.sport"
    assert second_seen.wait_messages(1)[0].body == "goal"


def test_stomp_to_amqp_and_back(stomp_connect: StompConnector, broker: EmbeddedBroker,
                                amqp: pika.adapters.blocking_connection.BlockingChannel
                                ) -> None:
    connection, collector = stomp_connect()
    connection.send("/queue/to-amqp", "from stomp", content_type="text/plain",
                    headers={"persistent": "true", "priority": "3", "x-n": "1"},
                    receipt="sent")
    collector.wait_receipt("sent")
    _method, props, body = amqp.basic_get("to-amqp", auto_ack=True)
    assert body == b"from stomp"
    assert (props.content_type, props.delivery_mode, props.priority) == ("text/plain", 2, 3)
    assert props.headers["x-n"] == "1"

    connection.subscribe("/topic/from.amqp", id="t")
    wait_for(lambda: broker.queues(), what="the subscription queue")
    amqp.basic_publish("amq.topic", "from.amqp", b"from amqp", pika.BasicProperties(
        correlation_id="c1", reply_to="replies", headers={"n": 5, "flag": True,
                                                          "nested": {"a": 1}}))
    [message] = collector.wait_messages(1)
    assert message.body == "from amqp"
    headers = message.headers
    assert headers["destination"] == "/topic/from.amqp"
    assert headers["correlation-id"] == "c1"
    assert headers["reply-to"] == "/reply-queue/replies"
    assert headers["n"] == "5"
    assert "flag" not in headers and "nested" not in headers
