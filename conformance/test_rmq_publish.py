"""§2.3 publish errors (c/m 60/40, raised after the content frames)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from amqp_conformance import Basic, Chan, Client, Confirm, Connect, make_connect, uniq

from amqpbroker.testing import broker_in_thread


def test_publish_to_missing_exchange(ch: Chan) -> None:
    x = uniq("x")
    ch.publish(x, "k", b"body")
    ch.expect_channel_close(404, f"NOT_FOUND - no exchange '{x}' in vhost '/'", 60, 40)


@pytest.mark.parametrize("internal", ["declared", "amq.rabbitmq.trace"])
def test_publish_to_internal_exchange(ch: Chan, internal: str) -> None:
    x = internal
    if internal == "declared":
        x = uniq("x")
        ch.exchange_declare(x, "topic", internal=True)
    ch.publish(x, "k", b"body")
    ch.expect_channel_close(
        403, f"ACCESS_REFUSED - cannot publish to internal exchange '{x}' in vhost '/'", 60, 40)


def test_publish_immediate_is_connection_error(ch: Chan) -> None:
    q = uniq("q")
    ch.queue_declare(q)
    ch.publish("", q, b"body", immediate=True)
    ch.expect_connection_close(540, "NOT_IMPLEMENTED - immediate=true", 60, 40)


@pytest.mark.parametrize(("expiration", "detail"), [
    ("abc", "no_integer"),
    ("-1", "{value_negative,-1}"),
    ("1.5", '{leftover_string,".5"}'),
    (" 100", "no_integer"),
])
def test_publish_bad_expiration(ch: Chan, expiration: str, detail: str) -> None:
    q = uniq("q")
    ch.queue_declare(q)
    ch.publish("", q, b"body", Basic.Properties(expiration=expiration))
    ch.expect_channel_close(
        406, f"PRECONDITION_FAILED - invalid expiration '{expiration}': {detail}", 60, 40)


@pytest.mark.parametrize("expiration", ["0", "", "60000"])
def test_publish_good_expiration_accepted(ch: Chan, expiration: str) -> None:
    q = uniq("q")
    ch.queue_declare(q)
    ch.call(Confirm.Select(), Confirm.SelectOk)
    ch.publish("", q, b"body", Basic.Properties(expiration=expiration))
    ack = ch.wait(Basic.Ack, Basic.Nack)
    assert (type(ack), ack.delivery_tag) == (Basic.Ack, 1)


def test_publish_foreign_user_id(ch: Chan) -> None:
    q = uniq("q")
    ch.queue_declare(q)
    ch.publish("", q, b"body", Basic.Properties(user_id="x"))
    ch.expect_channel_close(
        406, "PRECONDITION_FAILED - user_id property set to 'x' but authenticated user was "
             "'guest'", 60, 40)


def test_publish_own_user_id_accepted(ch: Chan) -> None:
    q = uniq("q")
    ch.queue_declare(q)
    ch.publish("", q, b"body", Basic.Properties(user_id="guest"))
    message = ch.get(q, no_ack=True)
    assert message is not None and message.properties.user_id == "guest"


def test_publish_to_other_connections_exclusive_queue_allowed(connect: Connect) -> None:
    owner = connect().channel()
    q = uniq("q")
    owner.queue_declare(q, exclusive=True)
    other = connect().channel()
    other.call(Confirm.Select(), Confirm.SelectOk)
    other.publish("", q, b"body", mandatory=True)
    ack = other.wait(Basic.Ack, Basic.Nack, Basic.Return)
    assert (type(ack), ack.delivery_tag) == (Basic.Ack, 1)
    message = owner.get(q, no_ack=True)
    assert message is not None and message.body == b"body"


LIMIT = 4096


@pytest.fixture(scope="module")
def small_broker() -> Iterator[Connect]:
    clients: list[Client] = []
    with broker_in_thread(max_message_size=LIMIT) as running:
        yield make_connect(running, clients)
        for client in clients:
            client.close()


def test_message_at_max_size_accepted(small_broker: Connect) -> None:
    ch = small_broker().channel()
    q = uniq("q")
    ch.queue_declare(q)
    ch.publish("", q, b"x" * LIMIT)
    message = ch.get(q, no_ack=True)
    assert message is not None and len(message.body) == LIMIT


def test_message_over_max_size_refused(small_broker: Connect) -> None:
    ch = small_broker().channel()
    q = uniq("q")
    ch.queue_declare(q)
    ch.publish("", q, b"x" * (LIMIT + 1))
    ch.expect_channel_close(
        406, f"PRECONDITION_FAILED - message size {LIMIT + 1} is larger than configured max "
             f"size {LIMIT}", 60, 40)


def test_properties_delivered_as_published(ch: Chan) -> None:
    q = uniq("q")
    ch.queue_declare(q)
    props = Basic.Properties(content_type="text/plain", content_encoding="utf-8",
                             headers={"h": "v", "n": 7}, delivery_mode=2, priority=3,
                             correlation_id="c1", reply_to="r1", expiration="60000",
                             message_id="m1", message_type="t1", app_id="a1")
    ch.publish("", q, b"body", props)
    message = ch.get(q, no_ack=True)
    assert message is not None
    assert message.properties == props
    assert (message.exchange, message.routing_key, message.body) == ("", q, b"body")
