"""Unit tests for the broker model: Broker, Session, Channel and the AMQP class handlers."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import RecordingSink, make_message
from pamqp import commands

from amqpbroker import errors
from amqpbroker.broker.broker import Broker
from amqpbroker.broker.channel import Channel
from amqpbroker.broker.handlers import DISPATCH, publish
from amqpbroker.broker.session import Session

ACK = commands.Basic.Ack.index
NACK = commands.Basic.Nack.index
REJECT = commands.Basic.Reject.index


class World:
    """A broker, one session on vhost '/' with a recording sink, and helpers to drive it."""

    def __init__(self, broker: Broker | None = None) -> None:
        self.broker = broker or Broker()
        self.sink = RecordingSink()
        session = self.broker.open_session("/", "guest", self.sink, cancel_notify=True)
        assert session is not None
        self.session: Session = session
        self.vhost = session.vhost

    def channel(self, channel_id: int = 1) -> Channel:
        return self.session.channels.get(channel_id) or self.session.open_channel(channel_id)

    def call(self, method: Any, channel_id: int = 1) -> None:
        DISPATCH[method.index](self.channel(channel_id), method)

    def ack(self, tag: int, multiple: bool = False, channel_id: int = 1) -> None:
        DISPATCH[ACK](self.channel(channel_id), (tag, multiple))

    def nack(self, tag: int, multiple: bool = False, requeue: bool = True,
             channel_id: int = 1) -> None:
        DISPATCH[NACK](self.channel(channel_id), (tag, multiple, requeue))

    def reject(self, tag: int, requeue: bool = True, channel_id: int = 1) -> None:
        DISPATCH[REJECT](self.channel(channel_id), (tag, requeue))

    def publish(self, exchange: str, routing_key: str, data: bytes = b"",
                mandatory: bool = False, channel_id: int = 1,
                properties: commands.Basic.Properties | None = None) -> None:
        publish(self.channel(channel_id), (exchange, routing_key, mandatory, False),
                make_message(exchange, routing_key, data, properties))
        self.vhost.ready.dispatch()

    def declare_queue(self, name: str, channel_id: int = 1, **kwargs: Any) -> None:
        self.call(commands.Queue.Declare(queue=name, **kwargs), channel_id)

    def declare_exchange(self, name: str, type_: str, channel_id: int = 1,
                         **kwargs: Any) -> None:
        self.call(commands.Exchange.Declare(exchange=name, exchange_type=type_, **kwargs),
                  channel_id)

    def bind(self, queue: str, exchange: str, key: str = "", channel_id: int = 1,
             arguments: dict[str, Any] | None = None) -> None:
        self.call(commands.Queue.Bind(queue=queue, exchange=exchange, routing_key=key,
                                      arguments=arguments), channel_id)

    def consume(self, queue: str, tag: str, channel_id: int = 1, no_ack: bool = False,
                **kwargs: Any) -> None:
        self.call(commands.Basic.Consume(queue=queue, consumer_tag=tag, no_ack=no_ack,
                                         **kwargs), channel_id)

    def get(self, queue: str, channel_id: int = 1, no_ack: bool = False) -> Any:
        """Basic.Get: (delivery_tag, redelivered, body) or None for Get-Empty."""
        self.call(commands.Basic.Get(queue=queue, no_ack=no_ack), channel_id)
        call = self.sink.calls.pop()
        if call[0] == "method":
            assert isinstance(call[2], commands.Basic.GetEmpty)
            return None
        _, _, method, message = call
        assert isinstance(method, commands.Basic.GetOk)
        return method.delivery_tag, method.redelivered, message.body

    def bodies(self, queue: str) -> list[bytes]:
        """Drain a queue with no-ack gets."""
        out = []
        while (got := self.get(queue, no_ack=True)) is not None:
            out.append(got[2])
        return out

    def deliveries(self) -> list[tuple[str, int, bool, bytes]]:
        """(consumer tag, delivery tag, redelivered, body) of every delivery so far."""
        return [(c[2], c[3], c[4], c[5].body) for c in self.sink.take("deliver")]

    def replies(self) -> list[Any]:
        return [c[2] for c in self.sink.take("method")]


@pytest.fixture
def w() -> World:
    return World()


# --- declarations and routing ---------------------------------------------------------------


def test_declare_queue_replies(w: World) -> None:
    w.declare_queue("q1")
    (ok,) = w.replies()
    assert isinstance(ok, commands.Queue.DeclareOk)
    assert (ok.queue, ok.message_count, ok.consumer_count) == ("q1", 0, 0)
    w.publish("", "q1", b"a")
    w.declare_queue("q1")
    (ok,) = w.replies()
    assert ok.message_count == 1


def test_server_named_queue(w: World) -> None:
    w.declare_queue("")
    (ok,) = w.replies()
    assert ok.queue.startswith("amq.gen-") and len(ok.queue) == 30
    # "" means the last declared queue on this channel
    w.publish("", ok.queue, b"x")
    assert w.bodies("") == [b"x"]


def test_declare_nowait_sends_nothing(w: World) -> None:
    w.declare_queue("q", nowait=True)
    w.declare_exchange("x", "direct", nowait=True)
    assert w.replies() == []
    assert "q" in w.vhost.queues and "x" in w.vhost.exchanges


def test_passive_declares(w: World) -> None:
    with pytest.raises(errors.ChannelError) as info:
        w.declare_queue("missing", passive=True)
    assert info.value.reply_text == "NOT_FOUND - no queue 'missing' in vhost '/'"
    with pytest.raises(errors.ChannelError) as info:
        w.declare_exchange("missing", "direct", passive=True)
    assert info.value.reply_text == "NOT_FOUND - no exchange 'missing' in vhost '/'"


def test_default_exchange_routes_by_queue_name(w: World) -> None:
    w.declare_queue("q1")
    w.declare_queue("q2")
    w.publish("", "q1", b"one")
    w.publish("", "q3", b"nowhere")
    assert w.bodies("q1") == [b"one"]
    assert w.bodies("q2") == []


def test_direct_exchange(w: World) -> None:
    w.declare_exchange("x", "direct")
    for name in ("a", "b", "c"):
        w.declare_queue(name)
    w.bind("a", "x", "k1")
    w.bind("b", "x", "k1")
    w.bind("c", "x", "k2")
    w.publish("x", "k1", b"m1")
    w.publish("x", "k2", b"m2")
    w.publish("x", "k3", b"m3")
    assert (w.bodies("a"), w.bodies("b"), w.bodies("c")) == ([b"m1"], [b"m1"], [b"m2"])


def test_fanout_exchange(w: World) -> None:
    w.declare_exchange("f", "fanout")
    w.declare_queue("a")
    w.declare_queue("b")
    w.bind("a", "f", "ignored")
    w.bind("b", "f")
    w.publish("f", "anything", b"m")
    assert (w.bodies("a"), w.bodies("b")) == ([b"m"], [b"m"])


def test_topic_exchange(w: World) -> None:
    w.declare_exchange("t", "topic")
    for name in ("hash", "star", "exact"):
        w.declare_queue(name)
    w.bind("hash", "t", "a.#")
    w.bind("star", "t", "*.b")
    w.bind("exact", "t", "a.b")
    for key in ("a", "a.b", "x.b", "a.b.c", "b"):
        w.publish("t", key, key.encode())
    assert w.bodies("hash") == [b"a", b"a.b", b"a.b.c"]
    assert w.bodies("star") == [b"a.b", b"x.b"]
    assert w.bodies("exact") == [b"a.b"]


def test_headers_exchange(w: World) -> None:
    w.declare_exchange("h", "headers")
    w.declare_queue("all")
    w.declare_queue("any")
    w.bind("all", "h", arguments={"x-match": "all", "a": 1, "b": "two"})
    w.bind("any", "h", arguments={"x-match": "any", "a": 1, "b": "two"})

    def send(data: bytes, headers: dict[str, Any] | None) -> None:
        w.publish("h", "", data, properties=commands.Basic.Properties(headers=headers))

    send(b"both", {"a": 1, "b": "two", "c": 3})
    send(b"one", {"a": 1})
    send(b"wrong", {"a": 2, "b": "three"})
    send(b"none", None)
    assert w.bodies("all") == [b"both"]
    assert w.bodies("any") == [b"both", b"one"]


def test_bad_x_match(w: World) -> None:
    w.declare_exchange("h", "headers")
    w.declare_queue("q")
    with pytest.raises(errors.ChannelError) as info:
        w.bind("q", "h", arguments={"x-match": "bogus"})
    assert info.value.reply_code == 406


def test_bind_replies_and_unbind(w: World) -> None:
    w.declare_exchange("x", "direct")
    w.declare_queue("q")
    w.replies()
    w.bind("q", "x", "k")
    assert [type(m) for m in w.replies()] == [commands.Queue.BindOk]
    w.call(commands.Queue.Unbind(queue="q", exchange="x", routing_key="k"))
    assert [type(m) for m in w.replies()] == [commands.Queue.UnbindOk]
    w.publish("x", "k", b"m")
    assert w.bodies("q") == []


def test_exchange_to_exchange_binding(w: World) -> None:
    w.declare_exchange("src", "direct")
    w.declare_exchange("dst", "fanout")
    w.declare_queue("q")
    w.bind("q", "dst")
    w.call(commands.Exchange.Bind(destination="dst", source="src", routing_key="k"))
    w.publish("src", "k", b"via")
    w.publish("src", "other", b"not")
    assert w.bodies("q") == [b"via"]


def test_exchange_cycle_gives_one_copy_per_queue(w: World) -> None:
    w.declare_exchange("x1", "fanout")
    w.declare_exchange("x2", "fanout")
    w.declare_exchange("x3", "topic")
    w.declare_queue("q1")
    w.declare_queue("q2")
    w.call(commands.Exchange.Bind(destination="x2", source="x1"))
    w.call(commands.Exchange.Bind(destination="x1", source="x2"))
    w.call(commands.Exchange.Bind(destination="x3", source="x2"))
    w.call(commands.Exchange.Bind(destination="x1", source="x3", routing_key="#"))
    w.bind("q1", "x1")
    w.bind("q1", "x2")
    w.bind("q1", "x3", "#")
    w.bind("q2", "x2")
    w.publish("x1", "k", b"m")
    assert w.bodies("q1") == [b"m"]
    assert w.bodies("q2") == [b"m"]
    w.publish("x3", "k", b"n")
    assert w.bodies("q1") == [b"n"]
    assert w.bodies("q2") == [b"n"]


def test_alternate_exchange(w: World) -> None:
    w.declare_exchange("ae", "fanout")
    w.declare_exchange("x", "direct", arguments={"alternate-exchange": "ae"})
    w.declare_queue("bound")
    w.declare_queue("unrouted")
    w.bind("bound", "x", "k")
    w.bind("unrouted", "ae")
    w.publish("x", "k", b"routed")
    w.publish("x", "other", b"lost", mandatory=True)
    assert w.bodies("bound") == [b"routed"]
    assert w.bodies("unrouted") == [b"lost"]
    assert w.sink.take("content") == []  # reached a queue: no Basic.Return


def test_alternate_exchange_missing_or_cyclic(w: World) -> None:
    w.declare_exchange("a", "direct", arguments={"alternate-exchange": "b"})
    w.declare_exchange("b", "direct", arguments={"alternate-exchange": "a"})
    w.declare_exchange("c", "direct", arguments={"alternate-exchange": "gone"})
    w.publish("a", "k", b"loop")
    w.publish("c", "k", b"missing")
    assert [q for q in w.vhost.queues.values() if q.message_count] == []


def test_mandatory_unroutable_is_returned(w: World) -> None:
    w.declare_exchange("x", "direct")
    w.publish("x", "nowhere", b"back", mandatory=True)
    w.publish("x", "nowhere", b"dropped")
    ((_, channel, method, message),) = w.sink.take("content")
    assert channel == 1
    assert isinstance(method, commands.Basic.Return)
    assert (method.reply_code, method.reply_text) == (312, "NO_ROUTE")
    assert (method.exchange, method.routing_key) == ("x", "nowhere")
    assert message.body == b"back"


def test_publish_to_missing_or_internal_exchange(w: World) -> None:
    with pytest.raises(errors.ChannelError) as info:
        w.publish("missing", "k")
    assert info.value.reply_text == "NOT_FOUND - no exchange 'missing' in vhost '/'"
    w.declare_exchange("int", "direct", internal=True)
    with pytest.raises(errors.ChannelError) as info:
        w.publish("int", "k")
    assert info.value.reply_text == (
        "ACCESS_REFUSED - cannot publish to internal exchange 'int' in vhost '/'")


# --- consumers ------------------------------------------------------------------------------


def test_consume_replies_and_delivers(w: World) -> None:
    w.declare_queue("q")
    w.replies()
    w.consume("q", "c1")
    (ok,) = w.replies()
    assert isinstance(ok, commands.Basic.ConsumeOk) and ok.consumer_tag == "c1"
    w.publish("", "q", b"m")
    assert w.deliveries() == [("c1", 1, False, b"m")]


def test_consume_server_tag(w: World) -> None:
    w.declare_queue("q")
    w.replies()
    w.consume("q", "")
    (ok,) = w.replies()
    assert ok.consumer_tag.startswith("amq.ctag-") and len(ok.consumer_tag) == 31


def test_round_robin_among_three_consumers(w: World) -> None:
    w.declare_queue("q")
    for tag in ("c1", "c2", "c3"):
        w.consume("q", tag)
    for i in range(7):
        w.publish("", "q", str(i).encode())
    got = w.deliveries()
    assert [(c, b) for c, _, _, b in got] == [
        ("c1", b"0"), ("c2", b"1"), ("c3", b"2"), ("c1", b"3"), ("c2", b"4"), ("c3", b"5"),
        ("c1", b"6")]
    assert [t for _, t, _, _ in got] == list(range(1, 8))


def test_round_robin_skips_consumers_without_credit(w: World) -> None:
    w.declare_queue("q")
    w.call(commands.Basic.Qos(prefetch_count=1))
    w.consume("q", "c1")
    w.consume("q", "c2")
    w.consume("q", "c3")
    for i in range(5):
        w.publish("", "q", str(i).encode())
    assert [(c, b) for c, _, _, b in w.deliveries()] == [
        ("c1", b"0"), ("c2", b"1"), ("c3", b"2")]
    w.ack(2)  # c2's message
    assert [(c, b) for c, _, _, b in w.deliveries()] == [("c2", b"3")]


def test_prefetch_per_consumer(w: World) -> None:
    w.declare_queue("q")
    w.call(commands.Basic.Qos(prefetch_count=2))
    assert [type(m) for m in w.replies()] == [commands.Queue.DeclareOk, commands.Basic.QosOk]
    w.consume("q", "c1")
    w.consume("q", "c2")
    for i in range(6):
        w.publish("", "q", str(i).encode())
    got = w.deliveries()
    assert len(got) == 4
    assert sorted(c for c, *_ in got) == ["c1", "c1", "c2", "c2"]
    assert w.vhost.queues["q"].message_count == 2
    w.ack(got[0][1])
    assert len(w.deliveries()) == 1
    assert w.vhost.queues["q"].message_count == 1


def test_prefetch_is_taken_at_consume_time(w: World) -> None:
    w.declare_queue("q")
    w.consume("q", "unlimited")
    w.call(commands.Basic.Qos(prefetch_count=1))
    w.consume("q", "limited")
    for i in range(6):
        w.publish("", "q", str(i).encode())
    tags = [c for c, *_ in w.deliveries()]
    assert tags.count("limited") == 1
    assert tags.count("unlimited") == 5


def test_prefetch_global_is_shared_by_the_channel(w: World) -> None:
    w.declare_queue("q1")
    w.declare_queue("q2")
    w.call(commands.Basic.Qos(prefetch_count=3, global_=True))
    w.consume("q1", "c1")
    w.consume("q2", "c2")
    for i in range(4):
        w.publish("", "q1", b"a%d" % i)
        w.publish("", "q2", b"b%d" % i)
    got = w.deliveries()
    assert len(got) == 3
    w.ack(got[0][1])
    assert len(w.deliveries()) == 1
    w.ack(0, multiple=True)
    assert len(w.deliveries()) == 3


def test_basic_get_does_not_use_prefetch_credit(w: World) -> None:
    """rabbit_limiter counts consumer deliveries only: unacked basic.get messages take no
    credit from a global (or per-consumer) prefetch."""
    fill(w, 3)
    w.call(commands.Basic.Qos(prefetch_count=1, global_=True))
    assert w.get("q") is not None
    w.consume("q", "c")
    assert [b for *_, b in w.deliveries()] == [b"2"]


def test_qos_prefetch_size_not_implemented(w: World) -> None:
    with pytest.raises(errors.AMQPConnectionError) as info:
        w.call(commands.Basic.Qos(prefetch_size=1))
    assert info.value.reply_text == "NOT_IMPLEMENTED - prefetch_size!=0 (1)"


def test_no_ack_consumer_ignores_prefetch_and_holds_nothing(w: World) -> None:
    w.declare_queue("q")
    w.call(commands.Basic.Qos(prefetch_count=1))
    w.consume("q", "c", no_ack=True)
    for i in range(5):
        w.publish("", "q", str(i).encode())
    assert len(w.deliveries()) == 5
    assert not w.channel().unacked
    with pytest.raises(errors.ChannelError) as info:
        w.ack(1)
    assert info.value.reply_text == "PRECONDITION_FAILED - unknown delivery tag 1"


def test_reused_consumer_tag(w: World) -> None:
    w.declare_queue("q")
    w.consume("q", "dup")
    with pytest.raises(errors.AMQPConnectionError) as info:
        w.consume("q", "dup")
    assert info.value.reply_text == "NOT_ALLOWED - attempt to reuse consumer tag 'dup'"
    w.consume("q", "dup", channel_id=2)  # another channel may use it


def test_cancel(w: World) -> None:
    w.declare_queue("q")
    w.consume("q", "c")
    w.replies()
    w.call(commands.Basic.Cancel(consumer_tag="c"))
    (ok,) = w.replies()
    assert isinstance(ok, commands.Basic.CancelOk) and ok.consumer_tag == "c"
    w.publish("", "q", b"m")
    assert w.deliveries() == []
    w.call(commands.Basic.Cancel(consumer_tag="unknown"))
    assert w.replies()[0].consumer_tag == "unknown"


# --- acknowledgements -----------------------------------------------------------------------


def fill(w: World, count: int, queue: str = "q") -> None:
    w.declare_queue(queue)
    for i in range(1, count + 1):
        w.publish("", queue, str(i).encode())


def test_ack_multiple(w: World) -> None:
    fill(w, 5)
    w.consume("q", "c")
    assert len(w.deliveries()) == 5
    w.ack(3, multiple=True)
    assert sorted(w.channel().unacked) == [4, 5]
    w.ack(5)
    assert sorted(w.channel().unacked) == [4]
    with pytest.raises(errors.ChannelError):
        w.ack(3)


def test_ack_zero_multiple_acks_everything(w: World) -> None:
    fill(w, 3)
    w.consume("q", "c")
    w.ack(0, multiple=True)
    assert not w.channel().unacked
    w.ack(0, multiple=True)  # nothing outstanding: still fine


@pytest.mark.parametrize(("tag", "multiple"), [(42, False), (42, True), (0, False)])
def test_unknown_delivery_tag(w: World, tag: int, multiple: bool) -> None:
    fill(w, 1)
    w.consume("q", "c")
    with pytest.raises(errors.ChannelError) as info:
        w.ack(tag, multiple)
    err = info.value
    assert err.reply_code == 406
    assert err.reply_text == f"PRECONDITION_FAILED - unknown delivery tag {tag}"


def test_unknown_tag_on_nack_and_reject(w: World) -> None:
    with pytest.raises(errors.ChannelError) as info:
        w.nack(42)
    assert info.value.reply_text == "PRECONDITION_FAILED - unknown delivery tag 42"
    with pytest.raises(errors.ChannelError) as info:
        w.reject(42)
    assert info.value.reply_text == "PRECONDITION_FAILED - unknown delivery tag 42"


def test_double_ack_and_other_channels_tag(w: World) -> None:
    fill(w, 2)
    w.consume("q", "c")
    w.ack(1)
    with pytest.raises(errors.ChannelError):
        w.ack(1)
    with pytest.raises(errors.ChannelError):
        w.ack(2, channel_id=2)


def test_requeue_returns_to_the_original_position(w: World) -> None:
    fill(w, 5)
    assert [w.get("q")[2] for _ in range(3)] == [b"1", b"2", b"3"]
    w.nack(3)
    w.nack(1)
    got = [w.get("q", no_ack=True) for _ in range(4)]
    assert [(r, b) for _, r, b in got] == [(True, b"1"), (True, b"3"), (False, b"4"),
                                           (False, b"5")]
    assert w.get("q") is None


def test_nack_multiple_requeue_keeps_order(w: World) -> None:
    fill(w, 4)
    w.call(commands.Basic.Qos(prefetch_count=3))
    w.consume("q", "c")
    assert [b for *_, b in w.deliveries()] == [b"1", b"2", b"3"]
    w.call(commands.Basic.Cancel(consumer_tag="c"))
    w.nack(3, multiple=True)
    assert w.bodies("q") == [b"1", b"2", b"3", b"4"]


def test_nack_and_reject_without_requeue_drop(w: World) -> None:
    fill(w, 3)
    tags = [w.get("q")[0] for _ in range(3)]
    w.nack(tags[1], multiple=True, requeue=False)
    w.reject(tags[2], requeue=False)
    assert w.bodies("q") == []
    assert not w.channel().unacked


def test_reject_requeue_redelivers_to_a_consumer(w: World) -> None:
    fill(w, 1)
    w.consume("q", "c")
    ((_, tag, redelivered, _),) = w.deliveries()
    assert redelivered is False
    w.reject(tag)
    ((_, tag2, redelivered, data),) = w.deliveries()
    assert (tag2, redelivered, data) == (tag + 1, True, b"1")


def test_recover_requeues_everything(w: World) -> None:
    fill(w, 3)
    for _ in range(3):
        w.get("q")
    w.call(commands.Basic.Recover(requeue=True))
    assert isinstance(w.replies()[-1], commands.Basic.RecoverOk)
    got = [w.get("q", no_ack=True) for _ in range(3)]
    assert [(r, b) for _, r, b in got] == [(True, b"1"), (True, b"2"), (True, b"3")]


def test_get_empty_and_message_count(w: World) -> None:
    fill(w, 2)
    w.call(commands.Basic.Get(queue="q"))
    _, _, ok, message = w.sink.calls.pop()
    assert (ok.delivery_tag, ok.message_count, ok.exchange, ok.routing_key) == (1, 1, "", "q")
    assert message.body == b"1"
    w.get("q")
    assert w.get("q") is None


def test_channel_close_requeues_unacked(w: World) -> None:
    fill(w, 2)
    w.consume("q", "c")
    w.deliveries()
    w.session.close_channel(1)
    assert not w.vhost.queues["q"].consumers
    assert w.bodies("q") == [b"1", b"2"]


# --- publisher confirms ---------------------------------------------------------------------


def test_confirms_are_coalesced_per_pass(w: World) -> None:
    w.declare_queue("q")
    w.call(commands.Confirm.Select())
    assert isinstance(w.replies()[-1], commands.Confirm.SelectOk)
    for _ in range(3):
        w.publish("", "q", b"m")
    assert w.sink.take("confirm") == []
    w.session.end_of_pass()
    assert w.sink.take("confirm") == [("confirm", 1, 3, True, True)]
    w.session.end_of_pass()
    assert w.sink.take("confirm") == []
    w.publish("", "q", b"m")
    w.session.end_of_pass()
    assert w.sink.take("confirm") == [("confirm", 1, 4, False, True)]


def test_unroutable_publishes_are_confirmed_too(w: World) -> None:
    w.call(commands.Confirm.Select())
    w.publish("amq.direct", "nowhere", b"m")
    w.publish("", "no-such-queue", b"m", mandatory=True)
    w.session.end_of_pass()
    assert w.sink.take("confirm") == [("confirm", 1, 2, True, True)]


def test_confirms_per_channel(w: World) -> None:
    w.call(commands.Confirm.Select(), channel_id=1)
    w.call(commands.Confirm.Select(), channel_id=2)
    w.publish("", "q", channel_id=1)
    w.publish("", "q", channel_id=2)
    w.publish("", "q", channel_id=2)
    w.session.end_of_pass()
    assert sorted(w.sink.take("confirm")) == [
        ("confirm", 1, 1, False, True), ("confirm", 2, 2, True, True)]


def test_confirm_select_nowait(w: World) -> None:
    w.call(commands.Confirm.Select(nowait=True))
    assert w.replies() == []
    assert w.channel().confirm


def test_confirm_and_tx_exclude_each_other(w: World) -> None:
    w.call(commands.Confirm.Select(), channel_id=1)
    with pytest.raises(errors.ChannelError) as info:
        w.call(commands.Tx.Select(), channel_id=1)
    assert info.value.reply_text == "PRECONDITION_FAILED - cannot switch from confirm to tx mode"
    w.call(commands.Tx.Select(), channel_id=2)
    with pytest.raises(errors.ChannelError) as info:
        w.call(commands.Confirm.Select(), channel_id=2)
    assert info.value.reply_text == "PRECONDITION_FAILED - cannot switch from tx to confirm mode"


# --- transactions ---------------------------------------------------------------------------


def test_tx_commit_publishes(w: World) -> None:
    w.declare_queue("q")
    w.call(commands.Tx.Select())
    w.publish("", "q", b"1")
    w.publish("", "q", b"2")
    assert w.vhost.queues["q"].message_count == 0
    w.call(commands.Tx.Commit())
    assert isinstance(w.replies()[-1], commands.Tx.CommitOk)
    assert w.bodies("q") == [b"1", b"2"]
    # still transactional after commit
    w.publish("", "q", b"3")
    assert w.vhost.queues["q"].message_count == 0


def test_tx_rollback_discards(w: World) -> None:
    w.declare_queue("q")
    w.call(commands.Tx.Select())
    w.publish("", "q", b"1")
    w.call(commands.Tx.Rollback())
    assert isinstance(w.replies()[-1], commands.Tx.RollbackOk)
    w.call(commands.Tx.Commit())
    assert w.bodies("q") == []


def test_tx_acks_wait_for_commit(w: World) -> None:
    fill(w, 3)
    w.consume("q", "c")
    w.deliveries()
    w.call(commands.Tx.Select())
    w.ack(2, multiple=True)
    w.reject(3, requeue=True)
    assert sorted(w.channel().unacked) == [1, 2, 3]
    w.call(commands.Tx.Rollback())
    assert sorted(w.channel().unacked) == [1, 2, 3]
    w.ack(2, multiple=True)
    w.call(commands.Tx.Commit())
    assert sorted(w.channel().unacked) == [3]


def test_tx_ack_of_unknown_tag_fails_at_once(w: World) -> None:
    w.call(commands.Tx.Select())
    with pytest.raises(errors.ChannelError) as info:
        w.ack(42)
    assert info.value.reply_text == "PRECONDITION_FAILED - unknown delivery tag 42"


@pytest.mark.parametrize("method", [commands.Tx.Commit(), commands.Tx.Rollback()])
def test_tx_without_select(w: World, method: Any) -> None:
    with pytest.raises(errors.ChannelError) as info:
        w.call(method)
    assert info.value.reply_text == "PRECONDITION_FAILED - channel is not transactional"


# --- lifetimes ------------------------------------------------------------------------------


def test_exclusive_queue_removed_on_session_close() -> None:
    broker = Broker()
    owner = World(broker)
    other = World(broker)
    owner.declare_queue("mine", exclusive=True)
    owner.declare_queue("shared")
    with pytest.raises(errors.ChannelError) as info:
        other.declare_queue("mine", passive=True)
    assert info.value.reply_code == 405
    with pytest.raises(errors.ChannelError) as info:
        other.consume("mine", "c")
    assert info.value.reply_code == 405
    owner.session.close()
    assert "mine" not in broker.vhosts["/"].queues
    assert "shared" in broker.vhosts["/"].queues
    other.declare_queue("mine")  # the name is free again


def test_exclusive_queue_bindings_go_with_it() -> None:
    broker = Broker()
    owner = World(broker)
    owner.declare_exchange("x", "fanout")
    owner.declare_queue("mine", exclusive=True)
    owner.bind("mine", "x")
    owner.session.close()
    assert not broker.vhosts["/"].exchanges["x"].bindings


def test_auto_delete_queue_goes_with_its_last_consumer(w: World) -> None:
    w.declare_queue("ad", auto_delete=True)
    w.publish("", "ad", b"m")
    assert "ad" in w.vhost.queues  # no consumer yet: stays
    w.consume("ad", "c1")
    w.consume("ad", "c2")
    w.call(commands.Basic.Cancel(consumer_tag="c1"))
    assert "ad" in w.vhost.queues
    w.call(commands.Basic.Cancel(consumer_tag="c2"))
    assert "ad" not in w.vhost.queues


def test_auto_delete_queue_goes_when_its_channel_closes(w: World) -> None:
    w.declare_queue("ad", auto_delete=True)
    w.consume("ad", "c")
    w.session.close_channel(1)
    assert "ad" not in w.vhost.queues


def test_auto_delete_exchange_goes_with_its_last_binding(w: World) -> None:
    w.declare_exchange("adx", "direct", auto_delete=True)
    w.declare_queue("q1")
    w.declare_queue("q2")
    assert "adx" in w.vhost.exchanges  # never bound: stays
    w.bind("q1", "adx", "a")
    w.bind("q2", "adx", "b")
    w.call(commands.Queue.Unbind(queue="q1", exchange="adx", routing_key="a"))
    assert "adx" in w.vhost.exchanges
    w.call(commands.Queue.Delete(queue="q2"))
    assert "adx" not in w.vhost.exchanges


def test_queue_delete_cancels_consumers_with_notification(w: World) -> None:
    fill(w, 2)
    w.consume("q", "c")
    w.deliveries()
    w.replies()
    w.call(commands.Queue.Delete(queue="q"))
    cancel, ok = w.replies()
    assert isinstance(cancel, commands.Basic.Cancel) and cancel.consumer_tag == "c"
    assert isinstance(ok, commands.Queue.DeleteOk)
    assert "c" not in w.channel().consumers
    w.ack(0, multiple=True)  # unacked deliveries of a deleted queue can still be acked


# --- backpressure ---------------------------------------------------------------------------


def test_consumer_blocked_while_sink_full_and_resumed(w: World) -> None:
    w.declare_queue("q")
    w.consume("q", "c")
    w.sink.is_writable = False
    for i in range(3):
        w.publish("", "q", str(i).encode())
    assert w.deliveries() == []
    assert w.vhost.queues["q"].message_count == 3
    w.sink.is_writable = True
    w.session.resume()
    assert [b for *_, b in w.deliveries()] == [b"0", b"1", b"2"]
    assert w.vhost.queues["q"].message_count == 0


def test_blocked_sink_does_not_starve_other_connections() -> None:
    broker = Broker()
    slow = World(broker)
    fast = World(broker)
    fast.declare_queue("q")
    slow.consume("q", "slow")
    fast.consume("q", "fast")
    slow.sink.is_writable = False
    for i in range(4):
        fast.publish("", "q", str(i).encode())
    assert [b for *_, b in fast.deliveries()] == [b"0", b"1", b"2", b"3"]
    assert slow.deliveries() == []


# --- channel class --------------------------------------------------------------------------


def test_flow(w: World) -> None:
    w.call(commands.Channel.Flow(active=True))
    (ok,) = w.replies()
    assert isinstance(ok, commands.Channel.FlowOk) and ok.active is True
    with pytest.raises(errors.AMQPConnectionError) as info:
        w.call(commands.Channel.Flow(active=False))
    assert info.value.reply_text == "NOT_IMPLEMENTED - active=false"


def test_broker_authenticate_and_unknown_vhost() -> None:
    broker = Broker()
    assert broker.authenticate("guest", "guest", loopback=True)
    assert not broker.authenticate("guest", "guest", loopback=False)
    assert not broker.authenticate("guest", "wrong", loopback=True)
    assert not broker.authenticate("nobody", "\x00", loopback=True)
    assert broker.open_session("nope", "guest", RecordingSink(), cancel_notify=True) is None
