"""Unit tests of the owner of a client connection (`transport.bridge.ClientConnection`),
driven without sockets: one broker, several connections."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import methods, owned_connection, pamqp_frame, publish_frames
from pamqp import commands

from amqpbroker.broker.broker import Broker


def _declare_and_consume(consumer: Any) -> None:
    consumer.receive(pamqp_frame(1, commands.Queue.Declare(queue="q")), 0.0)
    consumer.receive(pamqp_frame(1, commands.Basic.Consume(queue="q", consumer_tag="c",
                                                            no_ack=True)), 0.0)
    consumer.take_output(0.0)


def test_a_publish_is_delivered_at_the_end_of_the_publishers_pass() -> None:
    broker = Broker()
    consumer, publisher = owned_connection(broker), owned_connection(broker)
    _declare_and_consume(consumer)
    publisher.receive(publish_frames(1, b"one") + publish_frames(1, b"two"), 0.0)
    delivered = [m for _, m in methods(consumer.take_output(0.0))]
    assert [type(m) for m in delivered] == [commands.Basic.Deliver] * 2
    assert not broker.vhosts["/"].ready


def test_a_failed_delivery_ends_only_the_consumers_connection(
        caplog: pytest.LogCaptureFixture) -> None:
    broker = Broker()
    consumer, publisher = owned_connection(broker), owned_connection(broker)
    _declare_and_consume(consumer)

    def broken(*args: Any) -> None:
        raise RuntimeError("the consumer's encoder is broken")

    consumer.send_deliver = broken
    publisher.receive(pamqp_frame(1, commands.Confirm.Select()) + publish_frames(1, b"x"), 0.0)

    replies = [m for _, m in methods(publisher.take_output(0.0))]
    assert [type(m) for m in replies] == [commands.Confirm.SelectOk, commands.Basic.Ack]
    assert not publisher.closed and publisher.session is not None
    (close,) = [m for _, m in methods(consumer.take_output(0.0))]
    assert isinstance(close, commands.Connection.Close) and close.reply_code == 541
    assert consumer.session is None
    assert "internal error" in caplog.text
    # the publisher goes on publishing
    publisher.receive(publish_frames(1, b"y"), 0.0)
    assert [type(m) for _, m in methods(publisher.take_output(0.0))] == [commands.Basic.Ack]
