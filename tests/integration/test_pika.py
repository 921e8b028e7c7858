"""pika BlockingConnection against the broker: basics, confirms, channel and connection errors."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import (
    ChannelClosedByBroker,
    ConnectionClosedByBroker,
    ProbableAccessDeniedError,
    ProbableAuthenticationError,
    UnroutableError,
)

from amqpbroker.testing import EmbeddedBroker

pytestmark = pytest.mark.timeout(20)

CONNECT_TIMEOUTS = {"socket_timeout": 5, "blocked_connection_timeout": 5,
                    "stack_timeout": 5}


def parameters(url: str) -> pika.URLParameters:
    params = pika.URLParameters(url)
    for name, value in CONNECT_TIMEOUTS.items():
        setattr(params, name, value)
    return params


@pytest.fixture
def connection(amqp_url: str) -> Iterator[pika.BlockingConnection]:
    conn = pika.BlockingConnection(parameters(amqp_url))
    try:
        yield conn
    finally:
        if conn.is_open:
            conn.close()


def ready(connection: pika.BlockingConnection, queue: str) -> int:
    channel = connection.channel()
    try:
        return channel.queue_declare(queue, passive=True).method.message_count
    finally:
        channel.close()


# --- basics ----------------------------------------------------------------------------


def test_publish_get_and_ack(connection: pika.BlockingConnection):
    channel = connection.channel()
    declare_ok = channel.queue_declare("pk.get").method
    assert (declare_ok.queue, declare_ok.message_count, declare_ok.consumer_count) == (
        "pk.get", 0, 0)
    props = pika.BasicProperties(content_type="text/plain", headers={"n": 1},
                                 correlation_id="c-1", delivery_mode=2)
    for body in (b"first", b"second", b"third"):
        channel.basic_publish("", "pk.get", body, props)

    method, got_props, body = channel.basic_get("pk.get")
    assert body == b"first"
    assert (method.delivery_tag, method.redelivered, method.exchange, method.routing_key,
            method.message_count) == (1, False, "", "pk.get", 2)
    assert (got_props.content_type, got_props.headers, got_props.correlation_id,
            got_props.delivery_mode) == ("text/plain", {"n": 1}, "c-1", 2)
    channel.basic_ack(method.delivery_tag)

    method, _, body = channel.basic_get("pk.get")
    assert (body, method.delivery_tag, method.message_count) == (b"second", 2, 1)
    # Not acked: it comes back when the channel closes; the acked one does not.
    channel.close()
    assert ready(connection, "pk.get") == 2

    channel = connection.channel()
    method, _, body = channel.basic_get("pk.get", auto_ack=True)
    assert (body, method.redelivered, method.delivery_tag) == (b"second", True, 1)
    method, _, body = channel.basic_get("pk.get", auto_ack=True)
    assert (body, method.redelivered, method.message_count) == (b"third", False, 0)
    assert channel.basic_get("pk.get") == (None, None, None)


def test_consume_and_ack(connection: pika.BlockingConnection):
    channel = connection.channel()
    channel.queue_declare("pk.consume")
    for index in range(10):
        channel.basic_publish("", "pk.consume", str(index).encode())
    received = []
    for method, _, body in channel.consume("pk.consume", inactivity_timeout=5):
        assert method is not None, "no delivery within 5 s"
        received.append(body)
        channel.basic_ack(method.delivery_tag)
        if len(received) == 10:
            break
    assert received == [str(i).encode() for i in range(10)]
    assert channel.cancel() == 0
    channel.close()
    assert ready(connection, "pk.consume") == 0


def test_basic_consume_callback_with_prefetch(connection: pika.BlockingConnection):
    channel = connection.channel()
    channel.queue_declare("pk.cb")
    channel.basic_qos(prefetch_count=1)
    received: list[bytes] = []

    def on_message(ch: BlockingChannel, method: Any, _props: Any, body: bytes) -> None:
        received.append(body)
        ch.basic_ack(method.delivery_tag)
        if len(received) == 5:
            ch.stop_consuming()

    tag = channel.basic_consume("pk.cb", on_message)
    assert tag in channel.consumer_tags
    for index in range(5):
        channel.basic_publish("", "pk.cb", str(index).encode())
    connection.call_later(5, lambda: channel.stop_consuming())
    channel.start_consuming()
    assert received == [str(i).encode() for i in range(5)]


# --- publisher confirms ----------------------------------------------------------------


def test_confirms_and_unroutable_mandatory(connection: pika.BlockingConnection):
    channel = connection.channel()
    channel.confirm_delivery()
    channel.queue_declare("pk.confirm")
    for index in range(50):
        channel.basic_publish("", "pk.confirm", str(index).encode(), mandatory=True)
    assert ready(connection, "pk.confirm") == 50

    with pytest.raises(UnroutableError) as info:
        channel.basic_publish("amq.direct", "nobody-bound", b"lost", mandatory=True)
    [returned] = info.value.messages
    assert (returned.method.reply_code, returned.method.reply_text,
            returned.method.exchange, returned.method.routing_key) == (
        312, "NO_ROUTE", "amq.direct", "nobody-bound")
    assert returned.body == b"lost"

    # Not mandatory: dropped and acked, no error. The channel stays usable.
    channel.basic_publish("", "nowhere", b"dropped")
    channel.basic_publish("", "pk.confirm", b"last")
    assert channel.is_open
    assert ready(connection, "pk.confirm") == 51


def test_tx_mandatory_return_arrives_at_commit(connection: pika.BlockingConnection):
    channel = connection.channel()
    returned: list[tuple[Any, bytes]] = []
    channel.add_on_return_callback(lambda _ch, method, _props, body: returned.append(
        (method, body)))
    channel.queue_declare("pk.tx")
    channel.tx_select()
    channel.basic_publish("", "pk.tx", b"kept", mandatory=True)
    channel.basic_publish("", "pk.tx.nowhere", b"returned", mandatory=True)
    channel.queue_declare("pk.tx", passive=True)  # a round trip before the commit
    connection.process_data_events(time_limit=0)
    assert returned == []
    assert ready(connection, "pk.tx") == 0

    channel.tx_commit()
    connection.process_data_events(time_limit=0)
    assert [(m.reply_code, m.routing_key, body) for m, body in returned] == [
        (312, "pk.tx.nowhere", b"returned")]
    assert ready(connection, "pk.tx") == 1


# --- channel errors --------------------------------------------------------------------


def _expect_channel_error(connection: pika.BlockingConnection,
                          action: Callable[[BlockingChannel], Any], code: int,
                          text: str) -> None:
    channel = connection.channel()
    with pytest.raises(ChannelClosedByBroker) as info:
        action(channel)
    assert (info.value.reply_code, info.value.reply_text) == (code, text)
    assert channel.is_closed
    assert connection.is_open
    # The connection survives a channel error: a new channel works.
    channel = connection.channel()
    channel.queue_declare("pk.still-works")
    channel.close()


def test_passive_declare_of_missing_queue_is_404(connection: pika.BlockingConnection):
    _expect_channel_error(connection, lambda ch: ch.queue_declare("x", passive=True),
                          404, "NOT_FOUND - no queue 'x' in vhost '/'")


def _setup(connection: pika.BlockingConnection) -> None:
    channel = connection.channel()
    channel.queue_declare("pk.q")
    channel.exchange_declare("pk.direct", "direct")
    channel.queue_declare("pk.full")
    channel.basic_publish("", "pk.full", b"x")
    channel.close()


def _publish_then_sync(exchange: str) -> Callable[[BlockingChannel], Any]:
    def action(channel: BlockingChannel) -> None:
        channel.basic_publish(exchange, "rk", b"x")
        channel.queue_declare("pk.q", passive=True)  # the error arrives by now
    return action


def _ack_then_sync(channel: BlockingChannel) -> None:
    channel.basic_ack(42)
    channel.queue_declare("pk.q", passive=True)


def _confirm_then_tx(channel: BlockingChannel) -> None:
    channel.confirm_delivery()
    channel.tx_select()


def _tx_then_confirm(channel: BlockingChannel) -> None:
    channel.tx_select()
    channel.confirm_delivery()


def _consume_then_delete_if_unused(channel: BlockingChannel) -> None:
    channel.basic_consume("pk.q", lambda *args: None)
    channel.queue_delete("pk.q", if_unused=True)


CHANNEL_ERRORS = {
    "passive-exchange": (
        lambda ch: ch.exchange_declare("nope", passive=True),
        404, "NOT_FOUND - no exchange 'nope' in vhost '/'"),
    "durable-differs": (
        lambda ch: ch.queue_declare("pk.q", durable=True),
        406, "PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'pk.q' in vhost '/': "
             "received 'true' but current is 'false'"),
    "type-differs": (
        lambda ch: ch.exchange_declare("pk.direct", "fanout"),
        406, "PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'pk.direct' in vhost "
             "'/': received 'fanout' but current is 'direct'"),
    "reserved-queue-name": (
        lambda ch: ch.queue_declare("amq.foo"),
        403, "ACCESS_REFUSED - queue name 'amq.foo' contains reserved prefix 'amq.*'"),
    "delete-system-exchange": (
        lambda ch: ch.exchange_delete("amq.direct"),
        403, "ACCESS_REFUSED - deletion of system exchange 'amq.direct' in vhost '/' "
             "not allowed"),
    "delete-if-empty": (
        lambda ch: ch.queue_delete("pk.full", if_empty=True),
        406, "PRECONDITION_FAILED - queue 'pk.full' in vhost '/' not empty"),
    "bind-missing-queue": (
        lambda ch: ch.queue_bind("pk.missing", "pk.direct", "k"),
        404, "NOT_FOUND - no queue 'pk.missing' in vhost '/'"),
    "get-missing-queue": (
        lambda ch: ch.basic_get("pk.missing"),
        404, "NOT_FOUND - no queue 'pk.missing' in vhost '/'"),
    "publish-missing-exchange": (
        _publish_then_sync("pk.nope"),
        404, "NOT_FOUND - no exchange 'pk.nope' in vhost '/'"),
    "ack-unknown-tag": (
        _ack_then_sync, 406, "PRECONDITION_FAILED - unknown delivery tag 42"),
    "confirm-then-tx": (
        _confirm_then_tx, 406, "PRECONDITION_FAILED - cannot switch from confirm to tx mode"),
    "tx-then-confirm": (
        _tx_then_confirm, 406, "PRECONDITION_FAILED - cannot switch from tx to confirm mode"),
    "delete-if-unused": (
        _consume_then_delete_if_unused, 406,
        "PRECONDITION_FAILED - queue 'pk.q' in vhost '/' in use"),
    "commit-without-select": (
        lambda ch: ch.tx_commit(), 406, "PRECONDITION_FAILED - channel is not transactional"),
}


@pytest.mark.parametrize("case", sorted(CHANNEL_ERRORS))
def test_channel_errors_close_only_the_channel(connection: pika.BlockingConnection,
                                               case: str):
    _setup(connection)
    action, code, text = CHANNEL_ERRORS[case]
    _expect_channel_error(connection, action, code, text)


# --- connection errors -----------------------------------------------------------------


CONNECTION_ERRORS = {
    "unknown-exchange-type": (
        lambda ch: ch.exchange_declare("weird", exchange_type="bogus"),
        503, "COMMAND_INVALID - unknown exchange type 'bogus'"),
    "prefetch-size": (
        lambda ch: ch.basic_qos(prefetch_size=1),
        540, "NOT_IMPLEMENTED - prefetch_size!=0 (1)"),
    "recover-without-requeue": (
        lambda ch: ch.basic_recover(requeue=False),
        540, "NOT_IMPLEMENTED - requeue=false"),
}


@pytest.mark.parametrize("case", sorted(CONNECTION_ERRORS))
def test_connection_errors_close_the_connection(connection: pika.BlockingConnection,
                                                case: str):
    action, code, text = CONNECTION_ERRORS[case]
    channel = connection.channel()
    with pytest.raises(ConnectionClosedByBroker) as info:
        action(channel)
    assert (info.value.reply_code, info.value.reply_text) == (code, text)
    assert connection.is_closed


@pytest.mark.parametrize("user,password", [("guest", "wrong"), ("nobody", "guest")])
def test_bad_credentials_are_refused_with_403(amqp_broker: EmbeddedBroker, user: str,
                                              password: str):
    url = f"amqp://{user}:{password}@{amqp_broker.host}:{amqp_broker.port}/"
    with pytest.raises((ProbableAuthenticationError, ConnectionClosedByBroker)) as info:
        pika.BlockingConnection(parameters(url))
    text = ("ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. "
            "For details see the broker logfile.")
    if isinstance(info.value, ConnectionClosedByBroker):
        assert (info.value.reply_code, info.value.reply_text) == (403, text)
    else:
        assert f"(403) '{text}'" in str(info.value)
    # The broker still serves good clients.
    good = pika.BlockingConnection(parameters(amqp_broker.url))
    good.close()


def test_unknown_vhost_is_refused_with_530(amqp_broker: EmbeddedBroker):
    url = f"amqp://guest:guest@{amqp_broker.host}:{amqp_broker.port}/nosuch"
    with pytest.raises((ProbableAccessDeniedError, ConnectionClosedByBroker)) as info:
        pika.BlockingConnection(parameters(url))
    text = "NOT_ALLOWED - vhost nosuch not found"
    if isinstance(info.value, ConnectionClosedByBroker):
        assert (info.value.reply_code, info.value.reply_text) == (530, text)
    else:
        assert f"(530) '{text}'" in str(info.value)
