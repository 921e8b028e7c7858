"""Differences real clients trip on, each as RabbitMQ 3.10 was observed to behave:
Update-Secret, Exchange.Unbind on missing ends, channel numbers, reply-before-notification
order, argument and expiration ranges, and deleting reserved exchanges."""

from __future__ import annotations

import pytest
from amqp_conformance import (
    Basic,
    Chan,
    Channel,
    Client,
    Connect,
    Connection,
    Exchange,
    Queue,
    uniq,
)

TEN_YEARS_MS = 315_360_000_000


def test_update_secret_accepted_and_connection_usable(conn: Client) -> None:
    """Internal users: any new secret gets Update-Secret-Ok, not a 403."""
    conn.send_method(0, Connection.UpdateSecret(new_secret="anything at all", reason="refresh"))
    conn.wait(0, Connection.UpdateSecretOk)
    conn.assert_usable()


@pytest.mark.parametrize(("make_source", "make_destination"), [
    (True, True), (False, True), (True, False), (False, False)],
    ids=["missing-binding", "missing-source", "missing-destination", "both-missing"])
def test_exchange_unbind_never_fails(ch: Chan, make_source: bool,
                                     make_destination: bool) -> None:
    source, destination = uniq("src"), uniq("dst")
    if make_source:
        ch.exchange_declare(source)
    if make_destination:
        ch.exchange_declare(destination)
    ch.call(Exchange.Unbind(destination=destination, source=source, routing_key="k"),
            Exchange.UnbindOk)
    ch.sync()


def test_unbind_after_an_auto_delete_chain_went(ch: Chan) -> None:
    """Unbinding the queue deletes the auto-delete exchange `inner`, whose exchange
    binding kept the auto-delete `outer` alive; both are gone, and unbinding them
    afterwards still answers Unbind-Ok."""
    outer, inner, q = uniq("outer"), uniq("inner"), uniq("q")
    ch.exchange_declare(outer, "fanout", auto_delete=True)
    ch.exchange_declare(inner, "fanout", auto_delete=True)
    ch.call(Exchange.Bind(destination=inner, source=outer), Exchange.BindOk)
    ch.queue_declare(q)
    ch.queue_bind(q, inner)
    ch.call(Queue.Unbind(queue=q, exchange=inner), Queue.UnbindOk)
    ch.call(Exchange.Unbind(destination=inner, source=outer), Exchange.UnbindOk)
    for name in (outer, inner):
        ch.exchange_declare(name, "fanout", passive=True, ok=False)
        ch.expect_channel_close(404, f"NOT_FOUND - no exchange '{name}' in vhost '/'", 40, 10)
        ch = ch.client.channel()


@pytest.mark.parametrize("number", [65535, 2048, 4000])
def test_any_channel_number_opens(conn: Client, number: int) -> None:
    ch = conn.channel(number)
    assert ch.queue_declare(uniq("q")).message_count == 0


def test_channel_count_limit_still_applies(connect: Connect) -> None:
    conn = connect(channel_max=2)
    conn.channel(65535)
    conn.channel(3)
    conn.send_method(9, Channel.Open())
    conn.expect_connection_close(530, "NOT_ALLOWED - number of channels opened (2) has "
                                      "reached the negotiated channel_max (2)", 0, 0)


def test_queue_delete_ok_before_the_cancel_it_causes(conn: Client) -> None:
    """py-amqp and kombu wait for Delete-Ok and fail if Basic.Cancel comes first."""
    ch = conn.channel()
    q = uniq("q")
    ch.queue_declare(q)
    tag = ch.consume(q)
    ch.send(Queue.Delete(queue=q))
    ch.wait(Queue.DeleteOk)
    assert conn.take(ch.number, Basic.Cancel) == [], "Basic.Cancel came before Delete-Ok"
    cancel = ch.wait(Basic.Cancel)
    assert cancel.consumer_tag == tag


def test_queue_delete_from_another_channel_of_the_same_connection(conn: Client) -> None:
    consumer, deleter = conn.channel(), conn.channel()
    q = uniq("q")
    consumer.queue_declare(q)
    tag = consumer.consume(q)
    deleter.send(Queue.Delete(queue=q))
    deleter.wait(Queue.DeleteOk)
    assert conn.take(consumer.number, Basic.Cancel) == [], "Basic.Cancel came first"
    assert consumer.wait(Basic.Cancel).consumer_tag == tag


@pytest.mark.parametrize("arg", ["x-message-ttl", "x-expires"])
def test_ttl_arguments_up_to_ten_years(ch: Chan, arg: str) -> None:
    q = uniq("q")
    assert ch.queue_declare(q, arguments={arg: TEN_YEARS_MS}).queue == q
    q = uniq("q")
    ch.queue_declare(q, arguments={arg: TEN_YEARS_MS + 1}, ok=False)
    ch.expect_channel_close(
        406, f"PRECONDITION_FAILED - invalid arg '{arg}' for queue '{q}' in vhost '/': "
             f"{{value_too_large,{TEN_YEARS_MS + 1}}}", 50, 10)


@pytest.mark.parametrize("arg", ["x-max-length", "x-max-length-bytes"])
def test_lengths_take_any_64_bit_size(ch: Chan, arg: str) -> None:
    q = uniq("q")
    assert ch.queue_declare(q, arguments={arg: 2**62}).queue == q


def test_delivery_limit_is_refused_on_classic_queues(ch: Chan) -> None:
    """RabbitMQ 3.10: x-delivery-limit is a quorum queue argument."""
    q = uniq("q")
    ch.queue_declare(q, arguments={"x-delivery-limit": 5}, ok=False)
    ch.expect_channel_close(
        406, f"PRECONDITION_FAILED - invalid arg 'x-delivery-limit' for queue '{q}' in vhost "
             "'/' of queue type rabbit_classic_queue", 50, 10)


def test_expiration_up_to_ten_years(ch: Chan) -> None:
    q = uniq("q")
    ch.queue_declare(q)
    ch.publish("", q, b"x", properties=Basic.Properties(expiration=str(TEN_YEARS_MS)))
    ch.sync()
    ch.publish("", q, b"x", properties=Basic.Properties(expiration=str(TEN_YEARS_MS + 1)))
    ch.expect_channel_close(
        406, f"PRECONDITION_FAILED - invalid expiration '{TEN_YEARS_MS + 1}': "
             f"{{value_too_large,{TEN_YEARS_MS + 1}}}", 60, 40)


def test_deleting_a_missing_reserved_exchange_is_refused(ch: Chan) -> None:
    ch.send(Exchange.Delete(exchange="amq.nothing-here"))
    ch.expect_channel_close(403, "ACCESS_REFUSED - deletion of system exchange "
                                 "'amq.nothing-here' in vhost '/' not allowed", 40, 20)
