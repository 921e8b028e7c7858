"""§2.4 consume / get / ack errors and the matching "Ok" cases."""

from __future__ import annotations

import re

import pytest
from amqp_conformance import Basic, Chan, Client, Connect, Queue, uniq

LOCKED = ("RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{q}' in vhost '/'. "
          "It could be originally declared on another connection or the exclusive property "
          "value does not match that of the original declaration.")


def test_consume_missing_queue(ch: Chan) -> None:
    q = uniq("q")
    ch.send(Basic.Consume(queue=q))
    ch.expect_channel_close(404, f"NOT_FOUND - no queue '{q}' in vhost '/'", 60, 20)


def test_get_missing_queue(ch: Chan) -> None:
    q = uniq("q")
    ch.send(Basic.Get(queue=q))
    ch.expect_channel_close(404, f"NOT_FOUND - no queue '{q}' in vhost '/'", 60, 70)


@pytest.mark.parametrize(("action", "class_id", "method_id"), [
    ("consume", 60, 20),
    ("get", 60, 70),
    ("declare", 50, 10),
    ("declare-passive", 50, 10),
    ("declare-exclusive", 50, 10),
    ("delete", 50, 40),
    ("bind", 50, 20),
    ("purge", 50, 30),
])
def test_other_connections_exclusive_queue_locked(connect: Connect, action: str,
                                                  class_id: int, method_id: int) -> None:
    owner = connect().channel()
    q = uniq("q")
    owner.queue_declare(q, exclusive=True)
    ch = connect().channel()
    if action == "consume":
        ch.send(Basic.Consume(queue=q))
    elif action == "get":
        ch.send(Basic.Get(queue=q))
    elif action == "declare":
        ch.queue_declare(q, ok=False)
    elif action == "declare-passive":
        ch.queue_declare(q, passive=True, ok=False)
    elif action == "declare-exclusive":
        ch.queue_declare(q, exclusive=True, ok=False)
    elif action == "delete":
        ch.send(Queue.Delete(queue=q))
    elif action == "bind":
        ch.queue_bind(q, "amq.direct", "k", ok=False)
    elif action == "purge":
        ch.send(Queue.Purge(queue=q))
    ch.expect_channel_close(405, LOCKED.format(q=q), class_id, method_id)
    owner.queue_declare(q, passive=True)


@pytest.mark.parametrize(("first_exclusive", "second_exclusive", "where"), [
    (False, True, "same-channel"),
    (True, False, "same-channel"),
    (True, True, "same-channel"),
    (False, True, "other-connection"),
    (True, False, "other-connection"),
])
def test_exclusive_consumer_conflicts(connect: Connect, first_exclusive: bool,
                                      second_exclusive: bool, where: str) -> None:
    first = connect().channel()
    q = uniq("q")
    first.queue_declare(q)
    first.consume(q, exclusive=first_exclusive)
    second = first if where == "same-channel" else connect().channel()
    second.send(Basic.Consume(queue=q, exclusive=second_exclusive))
    second.expect_channel_close(
        403, f"ACCESS_REFUSED - queue '{q}' in vhost '/' in exclusive use", 60, 20)


def test_reused_consumer_tag_is_connection_error(ch: Chan) -> None:
    q = uniq("q")
    ch.queue_declare(q)
    ch.consume(q, tag="dup")
    ch.send(Basic.Consume(queue=q, consumer_tag="dup"))
    ch.expect_connection_close(530, "NOT_ALLOWED - attempt to reuse consumer tag 'dup'", 60, 20)


def _queue_with(ch: Chan, n: int) -> str:
    q = uniq("q")
    ch.queue_declare(q)
    for i in range(n):
        ch.publish("", q, b"%d" % (i + 1))
    return q


UNKNOWN = "PRECONDITION_FAILED - unknown delivery tag {}"


@pytest.mark.parametrize(("method", "method_id"), [
    (lambda tag: Basic.Ack(delivery_tag=tag), 80),
    (lambda tag: Basic.Ack(delivery_tag=tag, multiple=True), 80),
    (lambda tag: Basic.Reject(delivery_tag=tag), 90),
    (lambda tag: Basic.Nack(delivery_tag=tag), 120),
    (lambda tag: Basic.Nack(delivery_tag=tag, multiple=True), 120),
], ids=["ack", "ack-multiple", "reject", "nack", "nack-multiple"])
def test_unknown_delivery_tag(ch: Chan, method: object, method_id: int) -> None:
    ch.send(method(42))  # type: ignore[operator]
    ch.expect_channel_close(406, UNKNOWN.format(42), 60, method_id)


def test_ack_tag_zero_not_multiple(ch: Chan) -> None:
    ch.ack(0)
    ch.expect_channel_close(406, UNKNOWN.format(0), 60, 80)


def test_double_ack(ch: Chan) -> None:
    q = _queue_with(ch, 1)
    message = ch.get(q)
    assert message is not None and message.delivery_tag == 1
    ch.ack(1)
    ch.ack(1)
    ch.expect_channel_close(406, UNKNOWN.format(1), 60, 80)


def test_ack_of_another_channels_tag(conn: Client) -> None:
    one, two = conn.channel(), conn.channel()
    q = _queue_with(one, 1)
    message = one.get(q)
    assert message is not None and message.delivery_tag == 1
    two.ack(1)
    two.expect_channel_close(406, UNKNOWN.format(1), 60, 80)
    one.ack(1)
    one.sync()


def test_ack_of_no_ack_delivery(ch: Chan) -> None:
    q = _queue_with(ch, 1)
    message = ch.get(q, no_ack=True)
    assert message is not None and message.delivery_tag == 1
    ch.ack(1)
    ch.expect_channel_close(406, UNKNOWN.format(1), 60, 80)


def test_same_consumer_tag_on_another_channel_ok(conn: Client) -> None:
    one, two = conn.channel(), conn.channel()
    q = _queue_with(one, 0)
    assert one.consume(q, tag="same") == "same"
    assert two.consume(q, tag="same") == "same"


def test_cancel_unknown_tag_echoes_it(ch: Chan) -> None:
    ok = ch.call(Basic.Cancel(consumer_tag="never-seen"), Basic.CancelOk)
    assert ok.consumer_tag == "never-seen"
    ch.sync()


def test_ack_zero_multiple_with_nothing_outstanding_ok(ch: Chan) -> None:
    ch.ack(0, multiple=True)
    ch.sync()


def test_ack_zero_multiple_acks_everything(ch: Chan) -> None:
    q = _queue_with(ch, 3)
    for _ in range(3):
        assert ch.get(q) is not None
    ch.ack(0, multiple=True)
    ok = ch.queue_declare(q, passive=True)
    assert ok.message_count == 0
    ch.send(Basic.Recover(requeue=True))
    ch.wait(Basic.RecoverOk)
    ch.sync()
    assert ch.get(q) is None


def test_server_generated_consumer_tag(ch: Chan) -> None:
    q = _queue_with(ch, 0)
    tag = ch.consume(q)
    assert re.fullmatch(r"amq\.ctag-[A-Za-z0-9_-]{22}", tag), tag


def test_consumer_receives_deliver_fields(ch: Chan) -> None:
    q = _queue_with(ch, 0)
    tag = ch.consume(q)
    ch.publish("amq.direct", "unrouted-but-fine", b"ignored")
    ch.publish("", q, b"hello")
    deliver = ch.wait(Basic.Deliver)
    assert (deliver.consumer_tag, deliver.delivery_tag, deliver.redelivered, deliver.exchange,
            deliver.routing_key, deliver.body) == (tag, 1, False, "", q, b"hello")


def test_get_empty(ch: Chan) -> None:
    q = _queue_with(ch, 0)
    reply = ch.call(Basic.Get(queue=q), Basic.GetOk, Basic.GetEmpty)
    assert isinstance(reply, Basic.GetEmpty)
    assert reply.cluster_id == ""

