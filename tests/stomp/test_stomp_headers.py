"""Header mapping both ways, as RabbitMQ's STOMP plugin maps them; AMQP headers of any type
and shape never break a delivery, in any STOMP version."""

from __future__ import annotations

import datetime
import decimal

import pika
import pytest
from support.stomp_clients import StompConnector

from amqpbroker.testing import EmbeddedBroker, wait_for

Channel = pika.adapters.blocking_connection.BlockingChannel


def test_send_headers_become_properties_and_amqp_headers(stomp_connect: StompConnector,
                                                         amqp: Channel) -> None:
    connection, collector = stomp_connect()
    connection.send("/queue/mapped", "body", headers={
        "content-type": "application/json", "content-encoding": "gzip",
        "correlation-id": "c", "expiration": "60000", "type": "t", "user-id": "guest",
        "app-id": "a", "amqp-message-id": "m", "reply-to": "/queue/back", "priority": "7",
        "timestamp": "1700000000", "persistent": "true", "x-custom": "a:b"}, receipt="r")
    collector.wait_receipt("r")
    _method, props, _body = amqp.basic_get("mapped", auto_ack=True)
    assert (props.content_type, props.content_encoding, props.correlation_id) == (
        "application/json", "gzip", "c")
    assert (props.expiration, props.type, props.user_id, props.app_id) == (
        "60000", "t", "guest", "a")
    assert (props.message_id, props.reply_to, props.priority, props.delivery_mode) == (
        "m", "/queue/back", 7, 2)
    assert props.timestamp == 1700000000
    assert props.headers["x-custom"] == "a:b"
    assert props.headers["receipt"] == "r"
    assert "destination" not in props.headers and "persistent" not in props.headers


def test_amqp_properties_become_message_headers(stomp_connect: StompConnector,
                                                broker: EmbeddedBroker,
                                                amqp: Channel) -> None:
    connection, collector = stomp_connect()
    connection.subscribe("/queue/props", id="s", receipt="sub")
    collector.wait_receipt("sub")
    amqp.basic_publish("", "props", b"x", pika.BasicProperties(
        content_type="text/plain", content_encoding="utf-8", delivery_mode=1, priority=4,
        correlation_id="c", reply_to="/topic/back", expiration="5000", message_id="m",
        timestamp=1700000000, type="t", user_id="guest", app_id="a"))
    [message] = collector.wait_messages(1)
    headers = message.headers
    assert headers["content-type"] == "text/plain"
    assert headers["persistent"] == "1"
    assert (headers["priority"], headers["correlation-id"], headers["reply-to"]) == (
        "4", "c", "/topic/back")
    assert (headers["expiration"], headers["amqp-message-id"], headers["timestamp"]) == (
        "5000", "m", "1700000000")
    assert (headers["type"], headers["user-id"], headers["app-id"]) == ("t", "guest", "a")
    assert headers["redelivered"] == "false"
    assert headers["content-length"] == "1"


HOSTILE_HEADERS = {
    "text": "plain", "colon:name": "x:y", "line\nbreak": "a\nb\rc", "back\\slash": "\\",
    "content-length": "999", "destination": "/queue/elsewhere", "message-id": "forged",
    "subscription": "forged", "int": 42, "long": 2**40, "negative": -1, "bool": True,
    "decimal": decimal.Decimal("1.25"), "none": None, "bytes": b"\xff\x00",
    "list": [1, "a", [2]], "table": {"a": {"b": {"c": 1}}},
    "time": datetime.datetime(2024, 1, 1), "long text": "v" * 70000, "": "empty name",
    "unicode\u00e9": "\u2603"}


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_amqp_headers_of_any_type_never_break_a_delivery(
        stomp_connect: StompConnector, broker: EmbeddedBroker, amqp: Channel,
        version: str) -> None:
    connection, collector = stomp_connect(version=version)
    connection.subscribe("/queue/hostile", id="s", receipt="sub")
    collector.wait_receipt("sub")
    amqp.basic_publish("", "hostile", b"a\x00b", pika.BasicProperties(
        headers=HOSTILE_HEADERS))
    amqp.basic_publish("", "hostile", b"after")
    first, second = collector.wait_messages(2)
    headers = first.headers
    assert first.body == "a\x00b"
    assert headers["destination"] == "/queue/hostile"
    assert headers["content-length"] == "3"
    assert headers["message-id"].startswith("T_s@@")
    assert (headers["text"], headers["int"], headers["long"], headers["negative"]) == (
        "plain", "42", str(2**40), "-1")
    for dropped in ("bool", "decimal", "none", "list", "table", "time"):
        assert dropped not in headers
    if version == "1.0":
        assert "line\nbreak" not in headers
    else:
        assert headers["colon:name"] == "x:y"
    if version == "1.2":
        assert headers["line\nbreak"] == "a\nb\rc"
    assert second.body == "after"
    wait_for(lambda: broker.queue("hostile").depth == 0, what="both delivered")
