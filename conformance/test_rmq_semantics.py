"""§3 basic semantics: requeue order, counts, tags, confirms, tx, cancel, qos, auto-delete."""

from __future__ import annotations

from amqp_conformance import (
    CLIENT_CAPABILITIES,
    Basic,
    Chan,
    Channel,
    Client,
    Confirm,
    Connect,
    Connection,
    Delivery,
    Queue,
    Tx,
    uniq,
)


def fill(ch: Chan, n: int, q: str | None = None) -> str:
    q = q or uniq("q")
    ch.queue_declare(q)
    for i in range(1, n + 1):
        ch.publish("", q, b"%d" % i)
    return q


def confirmed(ch: Chan, upto: int) -> list[tuple[str, int, bool]]:
    """Collect publisher confirms until tag `upto` is covered."""
    seen: list[tuple[str, int, bool]] = []
    while not seen or seen[-1][1] < upto:
        frame = ch.wait(Basic.Ack, Basic.Nack)
        seen.append((type(frame).__name__, frame.delivery_tag, frame.multiple))
    return seen


def covered(confirms: list[tuple[str, int, bool]]) -> set[int]:
    tags: set[int] = set()
    for _, tag, multiple in confirms:
        tags |= set(range(1, tag + 1)) if multiple else {tag}
    return tags


def test_requeue_keeps_original_position(ch: Chan) -> None:
    q = fill(ch, 6)
    tags = {}
    for expected in (b"1", b"2", b"3"):
        message = ch.get(q)
        assert message is not None and message.body == expected
        tags[expected] = message.delivery_tag
    ch.send(Basic.Nack(delivery_tag=tags[b"3"], requeue=True))
    ch.send(Basic.Nack(delivery_tag=tags[b"1"], requeue=True))
    got = []
    for _ in range(5):
        message = ch.get(q, no_ack=True)
        assert message is not None
        got.append((message.body, message.redelivered))
    assert got == [(b"1", True), (b"3", True), (b"4", False), (b"5", False), (b"6", False)]
    assert ch.get(q) is None


def test_reject_requeue_sets_redelivered(ch: Chan) -> None:
    q = fill(ch, 1)
    first = ch.get(q)
    assert first is not None and first.redelivered is False
    ch.send(Basic.Reject(delivery_tag=first.delivery_tag, requeue=True))
    again = ch.get(q, no_ack=True)
    assert again is not None and (again.body, again.redelivered) == (b"1", True)


def test_reject_without_requeue_drops(ch: Chan) -> None:
    q = fill(ch, 2)
    first = ch.get(q)
    assert first is not None
    ch.send(Basic.Reject(delivery_tag=first.delivery_tag, requeue=False))
    assert ch.get_all(q) == [b"2"]


def test_close_with_unacked_requeues_as_redelivered(connect: Connect) -> None:
    first = connect()
    ch = first.channel()
    q = fill(ch, 2)
    assert ch.get(q) is not None
    other = connect().channel()
    ch.call(Channel.Close(200, "", 0, 0), Channel.CloseOk)
    got = [(m.body, m.redelivered) for m in iter(lambda: other.get(q, no_ack=True), None)]
    assert got == [(b"1", True), (b"2", False)]


def test_get_ok_message_count_is_ready_after_this_one(ch: Chan) -> None:
    q = fill(ch, 3)
    counts = []
    for _ in range(3):
        message = ch.get(q)
        assert message is not None
        counts.append(message.message_count)
    assert counts == [2, 1, 0]


def test_declare_ok_message_count_excludes_unacked(connect: Connect) -> None:
    publisher = connect().channel()
    publisher.call(Confirm.Select(), Confirm.SelectOk)
    q = fill(publisher, 6)
    assert covered(confirmed(publisher, 6)) == set(range(1, 7))
    ch = connect().channel()
    for _ in range(3):
        assert ch.get(q) is not None
    ok = ch.queue_declare(q, passive=True)
    assert (ok.message_count, ok.consumer_count) == (3, 0)
    ch.consume(q, no_ack=False)
    assert ch.queue_declare(q, passive=True).consumer_count == 1


def test_delivery_tags_per_channel_shared_by_get_and_consumers(conn: Client) -> None:
    ch = conn.channel()
    q1, q2 = fill(ch, 3), fill(ch, 3)
    assert ch.get(q1).delivery_tag == 1  # type: ignore[union-attr]
    ch.call(Basic.Qos(prefetch_count=1), Basic.QosOk)
    ch.consume(q1, tag="c1")
    assert ch.wait(Basic.Deliver).delivery_tag == 2
    ch.consume(q2, tag="c2")
    assert ch.wait(Basic.Deliver).delivery_tag == 3
    assert ch.get(q2).delivery_tag == 4  # type: ignore[union-attr]
    ch.call(Basic.Recover(requeue=True), Basic.RecoverOk)
    redelivered = sorted((d.consumer_tag, d.delivery_tag, d.redelivered)
                         for d in (ch.wait(Basic.Deliver), ch.wait(Basic.Deliver)))
    assert redelivered == [("c1", 5, True), ("c2", 6, True)] or redelivered == [
        ("c1", 6, True), ("c2", 5, True)], redelivered
    other = conn.channel()
    assert other.get(q2).delivery_tag == 1  # type: ignore[union-attr]


def test_confirm_tags_are_a_separate_counter(ch: Chan) -> None:
    q = fill(ch, 2)
    assert ch.get(q).delivery_tag == 1  # type: ignore[union-attr]
    assert ch.get(q).delivery_tag == 2  # type: ignore[union-attr]
    ch.call(Confirm.Select(), Confirm.SelectOk)
    ch.publish("", q, b"a")
    ch.publish("amq.direct", "unroutable", b"b")
    confirms = confirmed(ch, 2)
    assert covered(confirms) == {1, 2}
    assert {kind for kind, _, _ in confirms} == {"Ack"}
    assert ch.get(q).delivery_tag == 3  # type: ignore[union-attr]


def test_mandatory_return_before_ack(ch: Chan) -> None:
    ch.call(Confirm.Select(), Confirm.SelectOk)
    props = Basic.Properties(message_id="m1")
    ch.publish("amq.direct", "no-such-key", b"returned", props, mandatory=True)
    first = ch.wait(Basic.Return, Basic.Ack, Basic.Nack)
    assert isinstance(first.method, Basic.Return), first
    assert (first.reply_code, first.reply_text, first.exchange, first.routing_key,
            first.body, first.properties.message_id) == (
        312, "NO_ROUTE", "amq.direct", "no-such-key", b"returned", "m1")
    ack = ch.wait(Basic.Ack)
    assert (ack.delivery_tag, ack.multiple) == (1, False)


def test_unroutable_not_mandatory_plain_ack(ch: Chan) -> None:
    ch.call(Confirm.Select(), Confirm.SelectOk)
    ch.publish("amq.direct", "no-such-key", b"dropped")
    ack = ch.wait(Basic.Ack, Basic.Nack)
    assert (type(ack), ack.delivery_tag) == (Basic.Ack, 1)
    ch.sync()
    assert ch.take(Basic.Return) == []


def test_mandatory_routed_no_return(ch: Chan) -> None:
    q = fill(ch, 0)
    ch.publish("", q, b"x", mandatory=True)
    ch.sync()
    assert ch.take(Basic.Return) == []


def test_tx_publishes_invisible_until_commit(connect: Connect) -> None:
    ch = connect().channel()
    watcher = connect().channel()
    q = fill(ch, 0)
    ch.call(Tx.Select(), Tx.SelectOk)
    ch.publish("", q, b"1")
    ch.publish("", q, b"2")
    ch.publish("amq.direct", "no-such-key", b"back", mandatory=True)
    ch.sync()
    assert watcher.get(q) is None
    assert ch.take(Basic.Return) == []
    ch.send(Tx.Commit())
    first = ch.wait(Basic.Return, Tx.CommitOk)
    assert isinstance(first, Delivery) and first.body == b"back", first
    ch.wait(Tx.CommitOk)
    assert watcher.get_all(q) == [b"1", b"2"]


def test_tx_rollback_drops_publishes(ch: Chan) -> None:
    q = fill(ch, 0)
    ch.call(Tx.Select(), Tx.SelectOk)
    ch.publish("", q, b"1")
    ch.call(Tx.Rollback(), Tx.RollbackOk)
    ch.publish("", q, b"2")
    ch.call(Tx.Commit(), Tx.CommitOk)
    assert ch.get_all(q) == [b"2"]


def test_server_cancel_when_consumed_queue_deleted(connect: Connect) -> None:
    ch = connect().channel()
    q = fill(ch, 0)
    tag = ch.consume(q, tag="watch")
    other = connect().channel()
    other.call(Queue.Delete(queue=q), Queue.DeleteOk)
    cancel = ch.wait(Basic.Cancel)
    assert (cancel.consumer_tag, cancel.nowait) == (tag, True)


def test_no_server_cancel_without_capability(connect: Connect) -> None:
    caps = {k: v for k, v in CLIENT_CAPABILITIES.items() if k != "consumer_cancel_notify"}
    ch = connect(capabilities=caps).channel()
    q = fill(ch, 0)
    ch.consume(q, tag="watch")
    other = connect().channel()
    other.call(Queue.Delete(queue=q), Queue.DeleteOk)
    ch.sync()
    assert ch.take(Basic.Cancel) == []


def test_qos_global_limits_whole_channel(connect: Connect) -> None:
    publisher = connect().channel()
    publisher.call(Confirm.Select(), Confirm.SelectOk)
    q1, q2 = fill(publisher, 3), fill(publisher, 3)
    confirmed(publisher, 6)
    ch = connect().channel()
    ch.call(Basic.Qos(prefetch_count=2, global_=True), Basic.QosOk)
    ch.consume(q1)
    ch.consume(q2)
    ch.wait(Basic.Deliver)
    ch.wait(Basic.Deliver)
    ch.sync()
    assert ch.take(Basic.Deliver) == []
    ready = (ch.queue_declare(q1, passive=True).message_count
             + ch.queue_declare(q2, passive=True).message_count)
    assert ready == 4
    assert ch.take(Basic.Deliver) == []


def test_qos_not_global_affects_only_later_consumers(ch: Chan) -> None:
    q1, q2 = fill(ch, 0), fill(ch, 0)
    ch.consume(q1)
    ch.call(Basic.Qos(prefetch_count=1), Basic.QosOk)
    ch.consume(q2)
    for q in (q1, q2):
        for i in range(3):
            ch.publish("", q, b"%d" % i)
    for _ in range(4):
        ch.wait(Basic.Deliver)
    ch.sync()
    assert ch.take(Basic.Deliver) == []
    assert ch.queue_declare(q2, passive=True).message_count == 2
    assert ch.queue_declare(q1, passive=True).message_count == 0


def test_prefetch_released_by_ack(ch: Chan) -> None:
    q = fill(ch, 3)
    ch.call(Basic.Qos(prefetch_count=1), Basic.QosOk)
    ch.consume(q)
    first = ch.wait(Basic.Deliver)
    ch.sync()
    assert ch.take(Basic.Deliver) == []
    ch.ack(first.delivery_tag)
    assert ch.wait(Basic.Deliver).body == b"2"


def test_auto_delete_exchange_deleted_with_last_binding(ch: Chan) -> None:
    x, q1, q2 = uniq("x"), fill(ch, 0), fill(ch, 0)
    ch.exchange_declare(x, "direct", auto_delete=True)
    ch.exchange_declare(x, passive=True)  # not deleted before its first binding
    ch.queue_bind(q1, x, "a")
    ch.queue_bind(q2, x, "b")
    ch.call(Queue.Unbind(queue=q1, exchange=x, routing_key="a"), Queue.UnbindOk)
    ch.exchange_declare(x, passive=True)
    ch.call(Queue.Unbind(queue=q2, exchange=x, routing_key="b"), Queue.UnbindOk)
    ch.exchange_declare(x, passive=True, ok=False)
    ch.expect_channel_close(404, f"NOT_FOUND - no exchange '{x}' in vhost '/'", 40, 10)


def test_auto_delete_exchange_deleted_when_bound_queue_deleted(ch: Chan) -> None:
    x, q = uniq("x"), fill(ch, 0)
    ch.exchange_declare(x, "fanout", auto_delete=True)
    ch.queue_bind(q, x)
    ch.call(Queue.Delete(queue=q), Queue.DeleteOk)
    ch.exchange_declare(x, passive=True, ok=False)
    ch.expect_channel_close(404, f"NOT_FOUND - no exchange '{x}' in vhost '/'", 40, 10)


def test_auto_delete_queue_lifecycle(ch: Chan) -> None:
    q = uniq("q")
    ch.queue_declare(q, auto_delete=True)
    ch.queue_declare(q, passive=True)  # kept until it had a consumer
    one, two = ch.consume(q), ch.consume(q)
    ch.call(Basic.Cancel(consumer_tag=one), Basic.CancelOk)
    ch.queue_declare(q, passive=True)
    ch.call(Basic.Cancel(consumer_tag=two), Basic.CancelOk)
    ch.queue_declare(q, passive=True, ok=False)
    ch.expect_channel_close(404, f"NOT_FOUND - no queue '{q}' in vhost '/'", 50, 10)


def test_exclusive_queue_deleted_with_its_connection(connect: Connect) -> None:
    owner = connect()
    q = uniq("q")
    owner.channel().queue_declare(q, exclusive=True)
    owner.send_method(0, Connection.Close(200, "bye", 0, 0))
    owner.wait(0, Connection.CloseOk)
    ch = connect().channel()
    ch.queue_declare(q, passive=True, ok=False)
    ch.expect_channel_close(404, f"NOT_FOUND - no queue '{q}' in vhost '/'", 50, 10)


def test_predeclared_exchanges_exist(ch: Chan) -> None:
    for name, type_ in [("amq.direct", "direct"), ("amq.fanout", "fanout"),
                        ("amq.topic", "topic"), ("amq.headers", "headers"),
                        ("amq.match", "headers"), ("amq.rabbitmq.trace", "topic")]:
        ch.exchange_declare(name, type_, passive=True)
