"""Unit tests for time, limits and RabbitMQ extensions in the broker model, on a fake clock."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from helpers import FakeClock, make_message
from pamqp import commands, header
from test_model import World as ModelWorld

from amqpbroker import errors
from amqpbroker.broker import properties
from amqpbroker.broker.broker import Broker
from amqpbroker.broker.handlers import publish
from amqpbroker.broker.message import Message
from amqpbroker.broker.queue import Queue
from amqpbroker.broker.timers import Timers

WALL = 1_700_000_000.0
REPLY_TO = "amq.rabbitmq.reply-to"
TIMEOUT_TEXT = "PRECONDITION_FAILED - delivery acknowledgement on channel 1 timed out. " \
    "Timeout value used: {} ms"


class World(ModelWorld):
    """The model tests' driver on a fake clock (and wall clock). `peer()` opens another
    connection to the same broker."""

    def __init__(self, consumer_timeout: float | None = None,
                 parent: World | None = None) -> None:
        if parent is None:
            self.clock = FakeClock()
            self.wall = FakeClock(WALL)
            broker = Broker(timers=Timers(clock=self.clock, wall_clock=self.wall),
                            consumer_timeout=consumer_timeout)
        else:
            self.clock, self.wall, broker = parent.clock, parent.wall, parent.broker
        super().__init__(broker)

    def peer(self) -> World:
        return World(parent=self)

    # --- time ---------------------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        """Move the clocks on and run every timer that became due."""
        self.clock.advance(seconds)
        self.wall.advance(seconds)
        self.broker.timers.run_due(self.clock.now)
        self.broker.dispatch_ready()

    def advance_to(self, when: float) -> None:
        self.advance(when - self.clock.now)

    # --- methods --------------------------------------------------------------------------

    def publish(self, exchange: str, routing_key: str, data: bytes = b"",  # type: ignore[override]
                mandatory: bool = False, channel_id: int = 1, **props: Any) -> None:
        message = make_message(exchange, routing_key, data,
                               commands.Basic.Properties(**props) if props else None)
        publish(self.channel(channel_id), (exchange, routing_key, mandatory, False), message)
        self.vhost.ready.dispatch()

    def declare_queue(self, name: str, arguments: dict[str, Any] | None = None,
                      channel_id: int = 1, **kwargs: Any) -> commands.Queue.DeclareOk:
        self.call(commands.Queue.Declare(queue=name, arguments=arguments, **kwargs),
                  channel_id)
        reply = self.sink.calls.pop()[2]
        assert isinstance(reply, commands.Queue.DeclareOk)
        return reply

    def declare_exchange(self, name: str, type_: str, arguments: dict[str, Any] | None = None,
                         channel_id: int = 1) -> None:
        self.call(commands.Exchange.Declare(exchange=name, exchange_type=type_,
                                            arguments=arguments), channel_id)

    def bind(self, queue: str, exchange: str, key: str = "", channel_id: int = 1) -> None:
        self.call(commands.Queue.Bind(queue=queue, exchange=exchange, routing_key=key),
                  channel_id)

    def qos(self, prefetch: int, global_: bool = False, channel_id: int = 1) -> None:
        self.call(commands.Basic.Qos(prefetch_count=prefetch, global_=global_), channel_id)

    def consume(self, queue: str, tag: str, channel_id: int = 1, no_ack: bool = False,
                arguments: dict[str, Any] | None = None) -> None:
        self.call(commands.Basic.Consume(queue=queue, consumer_tag=tag, no_ack=no_ack,
                                         arguments=arguments), channel_id)

    def cancel(self, tag: str, channel_id: int = 1) -> None:
        self.call(commands.Basic.Cancel(consumer_tag=tag), channel_id)

    def confirm_select(self, channel_id: int = 1) -> None:
        self.call(commands.Confirm.Select(), channel_id)

    def get(self, queue: str, channel_id: int = 1, no_ack: bool = False
            ) -> tuple[int, bool, Message] | None:
        """Basic.Get: (delivery_tag, redelivered, message) or None for Get-Empty."""
        self.call(commands.Basic.Get(queue=queue, no_ack=no_ack), channel_id)
        call = self.sink.calls.pop()
        if call[0] == "method":
            assert isinstance(call[2], commands.Basic.GetEmpty)
            return None
        _, _, method, message = call
        assert isinstance(method, commands.Basic.GetOk)
        return method.delivery_tag, method.redelivered, message

    def bodies(self, queue: str) -> list[bytes]:
        """Drain a queue with no-ack gets."""
        out = []
        while (got := self.get(queue, no_ack=True)) is not None:
            out.append(got[2].body)
        return out

    # --- output ---------------------------------------------------------------------------

    def queue(self, name: str) -> Queue | None:
        return self.vhost.queues.get(name)

    def count(self, name: str) -> int:
        queue = self.queue(name)
        assert queue is not None, f"queue {name!r} is gone"
        return queue.message_count

    def deliveries(self) -> list[tuple[str, int, bool, bytes]]:
        """(consumer tag, delivery tag, redelivered, body) of every delivery so far."""
        return [(c[2], c[3], c[4], c[5].body) for c in self.sink.take("deliver")]

    def delivered_messages(self) -> list[tuple[int, str, Message]]:
        """(channel, consumer tag, message) of every delivery so far."""
        return [(c[1], c[2], c[5]) for c in self.sink.take("deliver")]

    def confirms(self) -> list[tuple[int, bool, bool]]:
        """(tag, multiple, ack) of the confirms sent, after the end of the read pass."""
        self.session.end_of_pass()
        return [(c[2], c[3], c[4]) for c in self.sink.take("confirm")]

    def closes(self) -> list[tuple[int, errors.AMQPError]]:
        return [(c[1], c[2]) for c in self.sink.take("close_channel")]


@pytest.fixture
def w() -> World:
    return World()


def headers(message: Message) -> dict[str, Any]:
    return properties.headers_of(message) or {}


def wire_properties(message: Message) -> commands.Basic.Properties:
    """The message's properties decoded from its header bytes by pamqp (wire order kept)."""
    content = header.ContentHeader()
    content.unmarshal(message.header)
    return content.properties


def dlx_args(exchange: str = "", routing_key: str | None = "dead",
             **more: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"x-dead-letter-exchange": exchange}
    if routing_key is not None:
        args["x-dead-letter-routing-key"] = routing_key
    args.update(more)
    return args


# --- x-message-ttl and per-message expiration --------------------------------------------


def test_expired_message_is_never_gotten(w: World) -> None:
    w.declare_queue("q", {"x-message-ttl": 1000})
    w.publish("", "q", b"old")
    w.clock.advance(0.6)
    w.publish("", "q", b"new")
    w.clock.advance(0.6)  # the clock moves but no timer has run yet
    assert w.bodies("q") == [b"new"]
    w.publish("", "q", b"last")
    w.clock.advance(1.5)
    assert w.get("q") is None


def test_expired_head_dropped_when_the_timer_fires(w: World) -> None:
    w.declare_queue("q", {"x-message-ttl": 1000})
    w.publish("", "q", b"a")
    w.advance(0.5)
    w.publish("", "q", b"b")
    assert w.count("q") == 2
    w.advance(0.7)  # t=1.2: a expired
    assert w.count("q") == 1
    w.advance(0.4)  # t=1.6: b expired
    assert w.count("q") == 0
    assert w.broker.timers.next_deadline() is None


def test_per_message_expiration_drops_the_message(w: World) -> None:
    w.declare_queue("q")
    w.publish("", "q", b"short", expiration="100")
    w.publish("", "q", b"long", expiration="60000")
    w.advance(0.2)
    assert w.count("q") == 1
    assert w.bodies("q") == [b"long"]


def test_expired_message_is_not_delivered_to_a_consumer(w: World) -> None:
    w.declare_queue("q", {"x-message-ttl": 1000})
    w.qos(1)
    w.consume("q", "c")
    w.publish("", "q", b"first")
    w.publish("", "q", b"second")
    assert w.deliveries() == [("c", 1, False, b"first")]
    w.clock.advance(2.0)  # second expires while the consumer has no credit
    w.ack(1)
    assert w.deliveries() == []
    assert w.count("q") == 0


def test_expired_by_queue_ttl_is_dead_lettered(w: World) -> None:
    w.declare_queue("dead")
    w.declare_queue("q", dlx_args(**{"x-message-ttl": 1000}))
    w.publish("", "q", b"m")
    w.advance(1.5)
    assert w.count("q") == 0
    got = w.get("dead")
    assert got is not None
    message = got[2]
    assert message.body == b"m"
    (death,) = headers(message)["x-death"]
    assert (death["reason"], death["queue"], death["count"]) == ("expired", "q", 1)
    assert "original-expiration" not in death
    assert headers(message)["x-first-death-reason"] == "expired"


def test_expired_by_message_expiration_is_dead_lettered(w: World) -> None:
    w.declare_exchange("dlx", "fanout")
    w.declare_queue("dead")
    w.bind("dead", "dlx")
    w.declare_queue("q", dlx_args("dlx", None))
    w.publish("", "q", b"m", expiration="250", message_id="id-1")
    w.advance(0.3)
    got = w.get("dead")
    assert got is not None
    message = got[2]
    assert (message.exchange, message.routing_key) == ("dlx", "q")
    props = wire_properties(message)
    assert props.expiration is None
    assert props.message_id == "id-1"
    (death,) = props.headers["x-death"]
    assert death["reason"] == "expired"
    assert death["original-expiration"] == "250"


def test_ttl_zero_is_delivered_to_a_ready_consumer(w: World) -> None:
    w.declare_queue("q", {"x-message-ttl": 0})
    w.consume("q", "c")
    w.publish("", "q", b"now")
    assert w.deliveries() == [("c", 1, False, b"now")]


def test_ttl_zero_expires_as_soon_as_time_moves(w: World) -> None:
    w.declare_queue("q", {"x-message-ttl": 0})
    w.publish("", "q", b"lost")
    w.advance(0.001)
    assert w.count("q") == 0
    assert w.get("q") is None


def test_ttl_zero_without_a_ready_consumer_is_dropped_at_once(w: World) -> None:
    """RabbitMQ: TTL 0 expires a message on arrival unless a consumer takes it at once;
    a basic.get in the same instant finds nothing."""
    w.declare_queue("dead")
    w.declare_queue("q", dlx_args(**{"x-message-ttl": 0}))
    w.publish("", "q", b"lost")
    assert w.declare_queue("q", dlx_args(**{"x-message-ttl": 0})).message_count == 0
    assert w.get("q") is None
    assert w.bodies("dead") == [b"lost"]


def test_ttl_zero_consumer_without_credit_gets_nothing(w: World) -> None:
    w.declare_queue("q", {"x-message-ttl": 0})
    w.qos(1)
    w.consume("q", "c")
    w.publish("", "q", b"taken")
    w.publish("", "q", b"lost")
    assert w.deliveries() == [("c", 1, False, b"taken")]
    w.advance(0.0)  # the timer pass that precedes the client's ack, without time passing
    w.ack(1)
    assert w.deliveries() == []


def test_message_that_expired_while_unacked_dies_when_requeued(w: World) -> None:
    w.declare_queue("dead")
    w.declare_queue("q", dlx_args(**{"x-message-ttl": 1000}))
    w.publish("", "q", b"m")
    got = w.get("q")
    assert got is not None
    w.advance(2.0)
    w.nack(got[0], requeue=True)
    w.advance(0.0)
    assert w.count("q") == 0
    assert w.get("q") is None
    dead = w.get("dead")
    assert dead is not None
    (death,) = headers(dead[2])["x-death"]
    assert death["reason"] == "expired"


@pytest.mark.parametrize(("queue_ttl", "expiration"), [(1000, "5000"), (5000, "1000")])
def test_the_smaller_ttl_wins(w: World, queue_ttl: int, expiration: str) -> None:
    w.declare_queue("q", {"x-message-ttl": queue_ttl})
    w.publish("", "q", b"m", expiration=expiration)
    w.advance(0.9)
    assert w.count("q") == 1
    w.advance(0.2)
    assert w.count("q") == 0


def test_deleting_a_queue_cancels_its_message_timers(w: World) -> None:
    w.declare_queue("dead")
    w.declare_queue("q", dlx_args(**{"x-message-ttl": 1000}))
    w.publish("", "q", b"m")
    w.call(commands.Queue.Delete(queue="q"))
    assert w.broker.timers.next_deadline() is None
    w.advance(2.0)
    assert w.count("dead") == 0


# --- x-expires ------------------------------------------------------------------------------


def test_unused_queue_expires(w: World) -> None:
    w.declare_exchange("x", "direct")
    w.declare_queue("q", {"x-expires": 1000})
    w.bind("q", "x", "k")
    w.publish("", "q", b"publishing does not count as use")
    w.advance(0.9)
    assert w.queue("q") is not None
    w.advance(0.2)
    assert w.queue("q") is None
    w.publish("x", "k", b"unroutable now", mandatory=True)
    (returned,) = w.sink.take("content")
    assert returned[2].reply_code == 312


def test_a_consumer_keeps_the_queue_alive(w: World) -> None:
    w.declare_queue("q", {"x-expires": 1000})
    w.consume("q", "c")
    w.advance(10.0)
    assert w.queue("q") is not None
    w.cancel("c")
    w.advance(0.9)
    assert w.queue("q") is not None
    w.advance(0.2)
    assert w.queue("q") is None


def test_closing_the_consumers_channel_starts_the_period(w: World) -> None:
    w.declare_queue("q", {"x-expires": 1000})
    w.consume("q", "c", channel_id=2)
    w.advance(5.0)
    w.session.close_channel(2)
    w.advance(0.9)
    assert w.queue("q") is not None
    w.advance(0.2)
    assert w.queue("q") is None


@pytest.mark.parametrize("use", ["get", "get_empty", "passive", "redeclare"])
def test_use_resets_the_expiry_timer(w: World, use: str) -> None:
    args = {"x-expires": 1000}
    w.declare_queue("q", args)
    if use == "get":
        w.publish("", "q", b"m")
    w.advance(0.8)
    if use in ("get", "get_empty"):
        w.get("q", no_ack=True)
    elif use == "passive":
        w.declare_queue("q", passive=True)
    else:
        w.declare_queue("q", args)
    w.advance(0.7)  # t=1.5: past the first deadline
    assert w.queue("q") is not None
    w.advance(0.4)  # t=1.9: past the reset one
    assert w.queue("q") is None


def test_expired_queue_cancels_nothing_and_redeclare_makes_a_new_one(w: World) -> None:
    w.declare_queue("q", {"x-expires": 100})
    w.advance(0.2)
    assert w.queue("q") is None
    ok = w.declare_queue("q", {"x-expires": 100})
    assert (ok.message_count, ok.consumer_count) == (0, 0)


# --- x-max-length / x-max-length-bytes and x-overflow -------------------------------------


def test_drop_head_drops_the_oldest(w: World) -> None:
    w.declare_queue("q", {"x-max-length": 2})
    for body in (b"a", b"b", b"c"):
        w.publish("", "q", body)
    assert w.bodies("q") == [b"b", b"c"]


def test_drop_head_by_bytes(w: World) -> None:
    w.declare_queue("q", {"x-max-length-bytes": 10})
    for body in (b"aaaa", b"bbbb", b"cccc"):
        w.publish("", "q", body)
    assert w.bodies("q") == [b"bbbb", b"cccc"]


def test_drop_head_dead_letters_with_reason_maxlen(w: World) -> None:
    w.declare_queue("dead")
    w.declare_queue("q", dlx_args(**{"x-max-length": 1}))
    w.confirm_select()
    w.sink.take()
    w.publish("", "q", b"a")
    w.publish("", "q", b"b")
    assert w.confirms() == [(2, True, True)]
    assert w.bodies("q") == [b"b"]
    got = w.get("dead")
    assert got is not None
    assert got[2].body == b"a"
    (death,) = headers(got[2])["x-death"]
    assert (death["reason"], death["queue"]) == ("maxlen", "q")


@pytest.mark.parametrize("how", ["nack", "close"])
def test_requeue_over_max_length_drops_the_head(w: World, how: str) -> None:
    """RabbitMQ's requeue_and_run runs maybe_drop_head: a requeued message that takes the
    queue over x-max-length is dropped (it is the oldest, at the head), dead-lettered."""
    w.declare_queue("dead")
    w.declare_queue("q", dlx_args(**{"x-max-length": 1}))
    w.publish("", "q", b"old", channel_id=2)
    got = w.get("q", channel_id=2)
    assert got is not None
    w.publish("", "q", b"new")
    if how == "nack":
        w.nack(got[0], channel_id=2)
    else:
        w.session.close_channel(2)
    assert w.count("q") == 1
    assert w.bodies("q") == [b"new"]
    dead = w.get("dead")
    assert dead is not None
    assert dead[2].body == b"old"
    assert headers(dead[2])["x-death"][0]["reason"] == "maxlen"


def test_reject_publish_nacks_with_confirms(w: World) -> None:
    w.declare_queue("q", {"x-max-length": 1, "x-overflow": "reject-publish"})
    w.confirm_select()
    w.sink.take()
    w.publish("", "q", b"a")
    w.publish("", "q", b"b", mandatory=True)
    assert w.confirms() == [(1, False, True), (2, False, False)]
    assert w.sink.take("content") == []  # no Basic.Return even though mandatory
    assert w.bodies("q") == [b"a"]


def test_reject_publish_by_bytes(w: World) -> None:
    w.declare_queue("q", {"x-max-length-bytes": 5, "x-overflow": "reject-publish"})
    w.confirm_select()
    w.sink.take()
    w.publish("", "q", b"abc")
    w.publish("", "q", b"def")
    w.publish("", "q", b"gh")
    assert w.confirms() == [(1, False, True), (2, False, False), (3, False, True)]
    assert w.bodies("q") == [b"abc", b"gh"]


def test_reject_publish_without_confirms_drops_silently(w: World) -> None:
    w.declare_queue("q", {"x-max-length": 1, "x-overflow": "reject-publish"})
    w.publish("", "q", b"a")
    w.publish("", "q", b"b")
    assert w.sink.calls == []
    assert w.bodies("q") == [b"a"]


def test_reject_publish_dlx_refuses_and_dead_letters(w: World) -> None:
    w.declare_queue("dead")
    w.declare_queue("q", dlx_args(**{"x-max-length": 1, "x-overflow": "reject-publish-dlx"}))
    w.confirm_select()
    w.sink.take()
    w.publish("", "q", b"a")
    w.publish("", "q", b"b")
    assert w.confirms() == [(1, False, True), (2, False, False)]
    assert w.bodies("q") == [b"a"]
    got = w.get("dead")
    assert got is not None
    assert got[2].body == b"b"
    (death,) = headers(got[2])["x-death"]
    assert (death["reason"], death["queue"]) == ("maxlen", "q")


def test_reject_publish_queue_space_frees_after_consumption(w: World) -> None:
    w.declare_queue("q", {"x-max-length": 1, "x-overflow": "reject-publish"})
    w.publish("", "q", b"a")
    assert w.bodies("q") == [b"a"]
    w.publish("", "q", b"b")
    assert w.bodies("q") == [b"b"]


def test_fanout_to_a_full_reject_publish_queue_nacks_but_others_keep_it(w: World) -> None:
    w.declare_exchange("fan", "fanout")
    w.declare_queue("full", {"x-max-length": 0, "x-overflow": "reject-publish"})
    w.declare_queue("normal")
    w.bind("full", "fan")
    w.bind("normal", "fan")
    w.confirm_select()
    w.sink.take()
    w.publish("fan", "", b"m", mandatory=True)
    assert w.confirms() == [(1, False, False)]
    assert w.sink.take("content") == []
    assert w.bodies("normal") == [b"m"]
    assert w.bodies("full") == []


# --- dead-lettering -------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["reject", "nack"])
def test_reject_without_requeue_dead_letters_as_rejected(w: World, how: str) -> None:
    w.declare_queue("dead")
    w.declare_queue("q", dlx_args())
    w.publish("", "q", b"m", headers={"user": "kept"})
    got = w.get("q")
    assert got is not None
    if how == "reject":
        w.reject(got[0], requeue=False)
    else:
        w.nack(got[0], requeue=False)
    assert w.count("q") == 0
    dead = w.get("dead")
    assert dead is not None
    message = dead[2]
    assert (message.exchange, message.routing_key) == ("", "dead")
    found = headers(message)
    assert found["user"] == "kept"
    (death,) = found["x-death"]
    assert (death["reason"], death["queue"], death["count"]) == ("rejected", "q", 1)
    assert death["exchange"] == ""
    assert death["routing-keys"] == ["q"]
    assert death["time"] == datetime.datetime.fromtimestamp(int(WALL), tz=datetime.UTC)
    assert (found["x-first-death-reason"], found["x-first-death-queue"],
            found["x-first-death-exchange"]) == ("rejected", "q", "")


def test_consumer_reject_dead_letters(w: World) -> None:
    w.declare_queue("dead")
    w.declare_queue("q", dlx_args())
    w.consume("q", "c")
    w.publish("", "q", b"m")
    ((_, tag, _, _),) = w.deliveries()
    w.reject(tag, requeue=False)
    assert w.bodies("dead") == [b"m"]


def test_first_death_entry_layout_on_the_wire(w: World) -> None:
    w.declare_queue("dead")
    w.declare_queue("q", dlx_args())
    w.publish("", "q", b"m", expiration="60000")
    got = w.get("q")
    assert got is not None
    w.reject(got[0], requeue=False)
    dead = w.get("dead")
    assert dead is not None
    props = wire_properties(dead[2])
    assert props.expiration is None
    (death,) = props.headers["x-death"]
    assert list(death) == ["count", "reason", "queue", "time", "exchange", "routing-keys",
                           "original-expiration"]
    assert death["original-expiration"] == "60000"


def test_without_dlrk_the_original_keys_route(w: World) -> None:
    w.declare_exchange("dlx", "direct")
    w.declare_queue("by-key")
    w.declare_queue("by-cc")
    w.bind("by-key", "dlx", "q")
    w.bind("by-cc", "dlx", "extra")
    w.declare_queue("q", dlx_args("dlx", None))
    w.declare_queue("extra")
    w.publish("", "q", b"m", headers={"CC": ["extra"]})
    assert w.bodies("extra") == [b"m"]
    got = w.get("q")
    assert got is not None
    w.reject(got[0], requeue=False)
    assert w.bodies("by-key") == [b"m"]
    assert w.bodies("by-cc") == [b"m"]


def test_dlrk_replaces_the_routing_key_and_drops_cc(w: World) -> None:
    w.declare_exchange("dlx", "direct")
    w.declare_queue("by-key")
    w.declare_queue("by-dlrk")
    w.bind("by-key", "dlx", "q")
    w.bind("by-dlrk", "dlx", "retry")
    w.declare_queue("q", dlx_args("dlx", "retry"))
    w.publish("", "q", b"m", headers={"CC": ["nowhere"]})
    got = w.get("q")
    assert got is not None
    w.reject(got[0], requeue=False)
    assert w.count("by-key") == 0
    dead = w.get("by-dlrk")
    assert dead is not None
    assert (dead[2].exchange, dead[2].routing_key) == ("dlx", "retry")
    found = headers(dead[2])
    assert "CC" not in found
    assert found["x-death"][0]["routing-keys"] == ["q", "nowhere"]


def test_default_exchange_as_dlx_routes_by_dlrk(w: World) -> None:
    w.declare_exchange("x", "direct")
    w.declare_queue("q", dlx_args("", "parking"))
    w.bind("q", "x", "k")
    w.declare_queue("parking")
    w.publish("x", "k", b"m")
    got = w.get("q")
    assert got is not None
    w.nack(got[0], requeue=False)
    dead = w.get("parking")
    assert dead is not None
    assert (dead[2].exchange, dead[2].routing_key) == ("", "parking")
    (death,) = headers(dead[2])["x-death"]
    assert (death["exchange"], death["routing-keys"]) == ("x", ["k"])


def test_missing_dlx_drops_silently(w: World) -> None:
    w.declare_queue("q", dlx_args("no-such-exchange", None))
    w.publish("", "q", b"m")
    got = w.get("q")
    assert got is not None
    w.reject(got[0], requeue=False)
    assert w.sink.calls == []
    assert w.count("q") == 0


def test_retry_loop_keeps_cycling_and_counts_deaths(w: World) -> None:
    """A rejects to B; B's TTL dead-letters back to A. A client rejected in A, so the loop
    is not automatic and never dropped; x-death counts each death."""
    w.declare_queue("A", dlx_args("", "B"))
    w.declare_queue("B", dlx_args("", "A", **{"x-message-ttl": 100}))
    w.publish("", "A", b"job")
    for cycle in range(1, 4):
        got = w.get("A")
        assert got is not None, f"lost in cycle {cycle}"
        w.reject(got[0], requeue=False)
        assert (w.count("A"), w.count("B")) == (0, 1)
        w.advance(0.2)
        assert (w.count("A"), w.count("B")) == (1, 0)
    got = w.get("A")
    assert got is not None
    message = got[2]
    assert message.routing_key == "A"
    found = headers(message)
    deaths = [(d["queue"], d["reason"], d["count"]) for d in found["x-death"]]
    assert deaths == [("B", "expired", 3), ("A", "rejected", 3)]
    assert (found["x-first-death-reason"], found["x-first-death-queue"]) == ("rejected", "A")
    updated = wire_properties(message).headers["x-death"][0]
    assert list(updated) == sorted(updated)


def test_automatic_cycle_through_one_queue_is_dropped(w: World) -> None:
    """C's TTL dead-letters to a fanout bound to C itself and to an audit queue: the copy
    for C would be an automatic cycle and is dropped, the audit copy is kept."""
    w.declare_exchange("dlx", "fanout")
    w.declare_queue("C", dlx_args("dlx", None, **{"x-message-ttl": 100}))
    w.declare_queue("audit")
    w.bind("C", "dlx")
    w.bind("audit", "dlx")
    w.publish("", "C", b"m")
    w.advance(0.2)
    assert (w.count("C"), w.count("audit")) == (0, 1)
    w.advance(1.0)
    assert (w.count("C"), w.count("audit")) == (0, 1)


def test_automatic_cycle_through_two_queues_is_dropped(w: World) -> None:
    w.declare_queue("P", dlx_args("", "Q", **{"x-message-ttl": 100}))
    w.declare_queue("Q", dlx_args("", "P", **{"x-message-ttl": 100}))
    w.publish("", "P", b"m")
    w.advance(0.15)
    assert (w.count("P"), w.count("Q")) == (0, 1)
    w.advance(0.15)
    assert (w.count("P"), w.count("Q")) == (0, 0)


# --- x-max-priority ---------------------------------------------------------------------------


def test_priority_queue_rabbitmq_example(w: World) -> None:
    w.declare_queue("q", {"x-max-priority": 5})
    published = [(b"p1", 1), (b"p5a", 5), (b"none", None), (b"p9", 9), (b"p0", 0),
                 (b"p5b", 5), (b"p3", 3)]
    for body, priority in published:
        if priority is None:
            w.publish("", "q", body)
        else:
            w.publish("", "q", body, priority=priority)
    got = []
    while (item := w.get("q", no_ack=True)) is not None:
        got.append((item[2].body, wire_properties(item[2]).priority))
    assert got == [(b"p5a", 5), (b"p9", 9), (b"p5b", 5), (b"p3", 3), (b"p1", 1),
                   (b"none", None), (b"p0", 0)]


def test_priority_queue_is_fifo_within_a_level(w: World) -> None:
    w.declare_queue("q", {"x-max-priority": 10})
    for i in range(5):
        w.publish("", "q", b"lo%d" % i, priority=2)
        w.publish("", "q", b"hi%d" % i, priority=7)
    assert w.bodies("q") == [b"hi%d" % i for i in range(5)] + [b"lo%d" % i for i in range(5)]


def test_priority_queue_requeue_keeps_the_position_within_the_level(w: World) -> None:
    w.declare_queue("q", {"x-max-priority": 5})
    for body, priority in ((b"a", 5), (b"b", 5), (b"c", 5), (b"x", 1), (b"y", 1)):
        w.publish("", "q", body, priority=priority)
    tags = {}
    for expected in (b"a", b"b", b"c", b"x"):
        got = w.get("q")
        assert got is not None and got[2].body == expected
        tags[expected] = got[0]
    w.nack(tags[b"x"])
    w.nack(tags[b"b"])
    w.nack(tags[b"a"])
    got_all = []
    while (item := w.get("q", no_ack=True)) is not None:
        got_all.append((item[2].body, item[1]))
    assert got_all == [(b"a", True), (b"b", True), (b"x", True), (b"y", False)]


def test_priority_queue_feeds_consumers_by_priority(w: World) -> None:
    w.declare_queue("q", {"x-max-priority": 9})
    w.qos(1)
    w.consume("q", "c")
    for body, priority in ((b"first", 1), (b"low", 1), (b"high", 9)):
        w.publish("", "q", body, priority=priority)
    assert w.deliveries() == [("c", 1, False, b"first")]
    w.ack(1)
    assert w.deliveries() == [("c", 2, False, b"high")]


# --- single active consumer -----------------------------------------------------------------


def test_single_active_consumer_feeds_only_the_first(w: World) -> None:
    w.declare_queue("q", {"x-single-active-consumer": True})
    w.consume("q", "c1")
    w.consume("q", "c2", channel_id=2)
    assert w.declare_queue("q", passive=True).consumer_count == 2
    for body in (b"1", b"2", b"3"):
        w.publish("", "q", body)
    assert [d[0] for d in w.deliveries()] == ["c1", "c1", "c1"]
    w.cancel("c1")
    w.publish("", "q", b"4")
    assert w.deliveries() == [("c2", 1, False, b"4")]


def test_single_active_consumer_waiting_ones_get_nothing_without_credit(w: World) -> None:
    w.declare_queue("q", {"x-single-active-consumer": True})
    w.qos(1)
    w.consume("q", "c1")
    w.consume("q", "c2", channel_id=2)
    for body in (b"1", b"2", b"3"):
        w.publish("", "q", body)
    assert w.deliveries() == [("c1", 1, False, b"1")]
    w.cancel("c1")
    assert w.deliveries() == [("c2", 1, False, b"2"), ("c2", 2, False, b"3")]
    w.ack(1)  # the old consumer's delivery stayed on its channel
    assert w.sink.take("close_channel") == []


def test_single_active_consumer_close_hands_unacked_to_the_next(w: World) -> None:
    w.declare_queue("q", {"x-single-active-consumer": True})
    w.consume("q", "c1")
    w.consume("q", "c2", channel_id=2)
    w.publish("", "q", b"m")
    assert w.deliveries() == [("c1", 1, False, b"m")]
    w.session.close_channel(1)
    assert w.deliveries() == [("c2", 1, True, b"m")]


# --- consumer priorities ----------------------------------------------------------------------


def test_consumer_priorities_rabbitmq_example(w: World) -> None:
    w.declare_queue("q")
    w.qos(1)
    w.consume("q", "hi", arguments={"x-priority": 10})
    w.qos(100)
    w.consume("q", "lo", arguments={"x-priority": 0})
    for i in range(5):
        w.publish("", "q", b"%d" % i)
    tags = [d[0] for d in w.deliveries()]
    assert (tags.count("hi"), tags.count("lo")) == (1, 4)
    assert tags[0] == "hi"
    w.ack(1)
    w.publish("", "q", b"5")
    assert [d[0] for d in w.deliveries()] == ["hi"]


def test_higher_priority_consumer_with_credit_takes_everything(w: World) -> None:
    w.declare_queue("q")
    w.consume("q", "lo")
    w.consume("q", "hi", arguments={"x-priority": 5})
    for i in range(4):
        w.publish("", "q", b"%d" % i)
    assert [d[0] for d in w.deliveries()] == ["hi"] * 4


def test_round_robin_within_one_priority(w: World) -> None:
    w.declare_queue("q")
    w.consume("q", "a", arguments={"x-priority": 5})
    w.consume("q", "b", arguments={"x-priority": 5})
    w.consume("q", "z")
    for i in range(4):
        w.publish("", "q", b"%d" % i)
    assert [d[0] for d in w.deliveries()] == ["a", "b", "a", "b"]


# --- delivery limits ------------------------------------------------------------------------


def quorum(**more: Any) -> dict[str, Any]:
    return {"x-queue-type": "quorum", **more}


def test_redelivery_carries_x_delivery_count(w: World) -> None:
    w.declare_queue("q", quorum(**{"x-delivery-limit": 5}), durable=True)
    w.publish("", "q", b"m", headers={"user": 1})
    got = w.get("q")
    assert got is not None
    assert "x-delivery-count" not in headers(got[2])
    for n in (1, 2, 3):
        w.nack(got[0])
        got = w.get("q")
        assert got is not None
        _, redelivered, message = got
        assert redelivered
        assert headers(message)["x-delivery-count"] == n
        assert headers(message)["user"] == 1


def test_over_the_delivery_limit_is_dead_lettered(w: World) -> None:
    w.declare_queue("dead")
    w.declare_queue("q", quorum(**dlx_args(**{"x-delivery-limit": 2})), durable=True)
    w.consume("q", "c")
    w.publish("", "q", b"m")
    for n in range(3):
        ((_, tag, redelivered, body),) = w.deliveries()
        assert (redelivered, body) == (n > 0, b"m")
        w.reject(tag, requeue=True)
    assert w.deliveries() == []
    assert w.count("q") == 0
    got = w.get("dead")
    assert got is not None
    (death,) = headers(got[2])["x-death"]
    assert (death["reason"], death["queue"]) == ("delivery_limit", "q")


def test_over_the_delivery_limit_without_dlx_is_dropped(w: World) -> None:
    w.declare_queue("q", quorum(**{"x-delivery-limit": 0}), durable=True)
    w.publish("", "q", b"m")
    got = w.get("q")
    assert got is not None
    w.nack(got[0])
    assert w.get("q") is None
    assert w.sink.calls == []


def test_quorum_default_delivery_limit_is_20(w: World) -> None:
    w.declare_queue("q", quorum(), durable=True)
    w.publish("", "q", b"m")
    for n in range(21):
        got = w.get("q")
        assert got is not None, f"dropped after {n} returns"
        if n:
            assert headers(got[2])["x-delivery-count"] == n
        w.nack(got[0])
    assert w.get("q") is None


# --- consumer timeout -----------------------------------------------------------------------


def test_consumer_timeout_closes_the_channel() -> None:
    w = World(consumer_timeout=1.0)
    w.declare_queue("q")
    w.consume("q", "c")
    w.publish("", "q", b"m")
    w.advance(0.9)
    assert w.closes() == []
    w.advance(0.2)
    ((channel_id, error),) = w.closes()
    assert channel_id == 1
    assert isinstance(error, errors.ChannelError)
    assert error.reply_code == 406
    assert error.reply_text.startswith(TIMEOUT_TEXT.format(1000))


def test_acking_in_time_prevents_the_timeout() -> None:
    w = World(consumer_timeout=1.0)
    w.declare_queue("q")
    w.consume("q", "c")
    w.publish("", "q", b"m")
    w.advance(0.5)
    w.ack(1)
    w.advance(5.0)
    assert w.closes() == []


def test_timeout_follows_the_oldest_outstanding_delivery() -> None:
    w = World(consumer_timeout=1.0)
    w.declare_queue("q")
    w.consume("q", "c")
    w.publish("", "q", b"m1")
    w.advance(0.8)
    w.publish("", "q", b"m2")
    w.ack(1)
    w.advance(0.4)  # t=1.2: m1's deadline passed, but m1 was acked
    assert w.closes() == []
    w.advance(0.7)  # t=1.9: m2's deadline (1.8) passed
    ((_, error),) = w.closes()
    assert error.reply_text.startswith(TIMEOUT_TEXT.format(1000))


def test_no_ack_consumers_never_time_out() -> None:
    w = World(consumer_timeout=1.0)
    w.declare_queue("q")
    w.consume("q", "c", no_ack=True)
    w.publish("", "q", b"m")
    w.advance(5.0)
    assert w.closes() == []


def test_consume_argument_x_consumer_timeout(w: World) -> None:
    w.declare_queue("q")
    w.consume("q", "c", arguments={"x-consumer-timeout": 2000})
    w.publish("", "q", b"m")
    w.advance(1.9)
    assert w.closes() == []
    w.advance(0.2)
    ((channel_id, error),) = w.closes()
    assert (channel_id, error.reply_code) == (1, 406)
    assert error.reply_text.startswith(TIMEOUT_TEXT.format(2000))


def test_consume_argument_overrides_the_broker_timeout() -> None:
    w = World(consumer_timeout=1.0)
    w.declare_queue("q")
    w.consume("q", "c", arguments={"x-consumer-timeout": 3000})
    w.publish("", "q", b"m")
    w.advance(1.5)
    assert w.closes() == []
    w.advance(1.6)
    ((_, error),) = w.closes()
    assert error.reply_text.startswith(TIMEOUT_TEXT.format(3000))


def test_queue_argument_x_consumer_timeout(w: World) -> None:
    w.declare_queue("q", {"x-consumer-timeout": 500})
    w.consume("q", "c")
    w.publish("", "q", b"m")
    w.advance(0.6)
    ((_, error),) = w.closes()
    assert error.reply_text.startswith(TIMEOUT_TEXT.format(500))


def test_closed_channel_does_not_time_out() -> None:
    w = World(consumer_timeout=1.0)
    w.declare_queue("q")
    w.consume("q", "c")
    w.publish("", "q", b"m")
    w.session.close_channel(1)
    w.advance(5.0)
    assert w.closes() == []
    assert w.count("q") == 1


# --- direct reply-to ------------------------------------------------------------------------


def test_direct_reply_to_round_trip(w: World) -> None:
    responder = w.peer()
    w.declare_queue("requests")
    w.consume(REPLY_TO, "rpc", no_ack=True)
    (ok,) = [c[2] for c in w.sink.take("method")]
    assert isinstance(ok, commands.Basic.ConsumeOk) and ok.consumer_tag == "rpc"
    w.publish("", "requests", b"question", reply_to=REPLY_TO)
    got = responder.get("requests", no_ack=True)
    assert got is not None
    address = wire_properties(got[2]).reply_to
    assert address.startswith(REPLY_TO + ".")
    assert len(address) > len(REPLY_TO) + 1
    responder.publish("", address, b"answer", mandatory=True)
    assert responder.sink.calls == []
    ((channel_id, tag, message),) = w.delivered_messages()
    assert (channel_id, tag, message.body) == (1, "rpc", b"answer")
    assert (message.exchange, message.routing_key) == ("", address)


def test_direct_reply_to_consume_must_be_no_ack(w: World) -> None:
    with pytest.raises(errors.ChannelError) as exc:
        w.consume(REPLY_TO, "rpc")
    assert exc.value.reply_code == 406
    assert exc.value.reply_text == "PRECONDITION_FAILED - reply consumer cannot acknowledge"


def test_direct_reply_to_second_consume(w: World) -> None:
    w.consume(REPLY_TO, "rpc", no_ack=True)
    with pytest.raises(errors.ChannelError) as exc:
        w.consume(REPLY_TO, "rpc2", no_ack=True)
    assert exc.value.reply_code == 406
    assert exc.value.reply_text == "PRECONDITION_FAILED - reply consumer already set"


def test_direct_reply_to_publish_without_a_reply_consumer(w: World) -> None:
    w.declare_queue("requests")
    w.consume(REPLY_TO, "rpc", no_ack=True, channel_id=2)
    with pytest.raises(errors.ChannelError) as exc:
        w.publish("", "requests", b"q", reply_to=REPLY_TO)
    assert exc.value.reply_code == 406
    assert exc.value.reply_text == "PRECONDITION_FAILED - fast reply consumer does not exist"
    assert w.count("requests") == 0


def test_direct_reply_to_unknown_address(w: World) -> None:
    address = REPLY_TO + ".no-such-token"
    w.publish("", address, b"lost")
    assert w.sink.calls == []
    w.publish("", address, b"lost", mandatory=True)
    ((_, channel_id, method, message),) = w.sink.take("content")
    assert isinstance(method, commands.Basic.Return)
    assert (channel_id, method.reply_code, method.reply_text) == (1, 312, "NO_ROUTE")
    assert (method.exchange, method.routing_key) == ("", address)
    assert message.body == b"lost"


def test_direct_reply_to_stale_address_after_cancel(w: World) -> None:
    responder = w.peer()
    w.declare_queue("requests")
    w.consume(REPLY_TO, "rpc", no_ack=True)
    w.publish("", "requests", b"question", reply_to=REPLY_TO)
    got = responder.get("requests", no_ack=True)
    assert got is not None
    address = wire_properties(got[2]).reply_to
    w.cancel("rpc")
    responder.publish("", address, b"answer", mandatory=True)
    assert w.sink.take("deliver") == []
    ((_, _, method, _),) = responder.sink.take("content")
    assert method.reply_code == 312


def test_direct_reply_to_passive_declare(w: World) -> None:
    ok = w.declare_queue(REPLY_TO, passive=True)
    assert (ok.queue, ok.message_count, ok.consumer_count) == (REPLY_TO, 0, 1)


# --- delayed messages -------------------------------------------------------------------------


def test_delayed_message_is_held_until_its_delay(w: World) -> None:
    w.declare_exchange("delayed", "x-delayed-message", {"x-delayed-type": "direct"})
    w.declare_queue("q")
    w.bind("q", "delayed", "k")
    w.publish("delayed", "k", b"later", headers={"x-delay": 5000})
    w.publish("delayed", "other", b"unroutable", headers={"x-delay": 5000})
    assert w.count("q") == 0
    w.advance(4.9)
    assert w.count("q") == 0
    w.advance(0.2)
    assert w.bodies("q") == [b"later"]


def test_delayed_exchange_without_x_delay_routes_at_once(w: World) -> None:
    w.declare_exchange("delayed", "x-delayed-message", {"x-delayed-type": "direct"})
    w.declare_queue("q")
    w.bind("q", "delayed", "k")
    w.publish("delayed", "k", b"now")
    assert w.bodies("q") == [b"now"]


def test_delayed_messages_leave_in_delay_order(w: World) -> None:
    w.declare_exchange("delayed", "x-delayed-message", {"x-delayed-type": "fanout"})
    w.declare_queue("q")
    w.bind("q", "delayed")
    w.publish("delayed", "", b"3s", headers={"x-delay": 3000})
    w.publish("delayed", "", b"1s", headers={"x-delay": 1000})
    w.publish("delayed", "", b"2s", headers={"x-delay": 2000})
    w.advance(10.0)
    assert w.bodies("q") == [b"1s", b"2s", b"3s"]


def test_delayed_message_dropped_when_its_exchange_goes(w: World) -> None:
    w.declare_exchange("delayed", "x-delayed-message", {"x-delayed-type": "fanout"})
    w.declare_queue("q")
    w.bind("q", "delayed")
    w.publish("delayed", "", b"m", headers={"x-delay": 1000})
    w.call(commands.Exchange.Delete(exchange="delayed"))
    w.advance(2.0)
    assert w.count("q") == 0


@pytest.mark.parametrize("arguments", [None, {"x-delayed-type": "bogus"}])
def test_delayed_exchange_needs_a_known_delayed_type(
        w: World, arguments: dict[str, Any] | None) -> None:
    with pytest.raises(errors.ChannelError) as exc:
        w.declare_exchange("delayed", "x-delayed-message", arguments)
    assert exc.value.reply_code == 406
    assert "x-delayed-type" in exc.value.reply_text
    assert "delayed" not in w.vhost.exchanges


# --- CC and BCC -------------------------------------------------------------------------------


def test_cc_and_bcc_route_to_extra_keys(w: World) -> None:
    for name in ("q1", "q2", "q3"):
        w.declare_queue(name)
        w.bind(name, "amq.direct", name)
    w.publish("amq.direct", "q1", b"m", headers={"CC": ["q2"], "BCC": ["q3"], "n": 1})
    for name in ("q1", "q2", "q3"):
        got = w.get(name, no_ack=True)
        assert got is not None, name
        message = got[2]
        assert message.routing_key == "q1"
        found = wire_properties(message).headers
        assert found["CC"] == ["q2"]
        assert "BCC" not in found
        assert found["n"] == 1


def test_cc_through_the_default_exchange(w: World) -> None:
    w.declare_queue("a")
    w.declare_queue("b")
    w.publish("", "a", b"m", headers={"CC": ["b", "a"]})
    assert w.bodies("a") == [b"m"]
    assert w.bodies("b") == [b"m"]


def test_bcc_only_target_does_not_see_bcc(w: World) -> None:
    w.declare_queue("hidden")
    w.publish("", "nowhere", b"m", headers={"BCC": ["hidden"]})
    got = w.get("hidden")
    assert got is not None
    assert "BCC" not in (wire_properties(got[2]).headers or {})


# --- queue types and consume --------------------------------------------------------------------


def test_quorum_queue_refuses_global_qos(w: World) -> None:
    w.declare_queue("q", quorum(), durable=True)
    w.qos(10, global_=True)
    with pytest.raises(errors.AMQPConnectionError) as exc:
        w.consume("q", "c")
    assert exc.value.reply_code == 540
    assert exc.value.reply_text == (
        "NOT_IMPLEMENTED - queue 'q' in vhost '/' does not support global qos")


def test_quorum_queue_accepts_per_consumer_qos(w: World) -> None:
    w.declare_queue("q", quorum(), durable=True)
    w.qos(10)
    w.consume("q", "c")
    w.publish("", "q", b"m")
    assert w.deliveries() == [("c", 1, False, b"m")]


def test_stream_consume_needs_a_prefetch(w: World) -> None:
    w.declare_queue("q", {"x-queue-type": "stream"}, durable=True)
    with pytest.raises(errors.ChannelError) as exc:
        w.consume("q", "c")
    assert exc.value.reply_code == 406
    assert exc.value.reply_text == (
        "PRECONDITION_FAILED - consumer prefetch count is not set for "
        "'queue 'q' in vhost '/''")


# --- queue argument validation (reference §2.7) ------------------------------------------------

INVALID_ARGS = [
    ({"x-max-length": "abc"}, "x-max-length", '"expected integer, got longstr"'),
    ({"x-message-ttl": "1000"}, "x-message-ttl", '"expected integer, got longstr"'),
    ({"x-message-ttl": 1000.0}, "x-message-ttl", '"expected integer, got double"'),
    ({"x-max-length": -1}, "x-max-length", "{value_negative,-1}"),
    ({"x-max-length-bytes": -1}, "x-max-length-bytes", "{value_negative,-1}"),
    ({"x-message-ttl": -1}, "x-message-ttl", "{value_negative,-1}"),
    ({"x-max-priority": -1}, "x-max-priority", "{value_negative,-1}"),
    ({"x-expires": 0}, "x-expires", "{value_zero,0}"),
    ({"x-expires": -5}, "x-expires", "{value_negative,-5}"),
    ({"x-message-ttl": 2**40}, "x-message-ttl", "{value_too_large,1099511627776}"),
    ({"x-max-priority": 256}, "x-max-priority", "{max_value_exceeded,256}"),
    ({"x-overflow": "bogus"}, "x-overflow", "invalid_overflow"),
    ({"x-queue-type": "bogus"}, "x-queue-type", "\"unsupported queue type 'bogus'\""),
    ({"x-queue-mode": "bogus"}, "x-queue-mode", "\"unsupported queue mode 'bogus'\""),
    ({"x-single-active-consumer": "yes"}, "x-single-active-consumer",
     "{unacceptable_type,longstr}"),
    ({"x-dead-letter-routing-key": "k"}, "x-dead-letter-routing-key",
     "routing_key_but_no_dlx_defined"),
]


@pytest.mark.parametrize(("arguments", "arg", "detail"), INVALID_ARGS)
def test_invalid_queue_argument(w: World, arguments: dict[str, Any], arg: str,
                                detail: str) -> None:
    with pytest.raises(errors.ChannelError) as exc:
        w.vhost.declare_queue(w.session, "q", False, False, False, False, arguments)
    assert exc.value.reply_code == 406
    assert exc.value.reply_text == (
        f"PRECONDITION_FAILED - invalid arg '{arg}' for queue 'q' in vhost '/': {detail}")
    assert w.queue("q") is None


def test_invalid_dead_letter_exchange_type(w: World) -> None:
    with pytest.raises(errors.ChannelError) as exc:
        w.vhost.declare_queue(w.session, "q", False, False, False, False,
                              {"x-dead-letter-exchange": 5})
    assert exc.value.reply_text == (
        "PRECONDITION_FAILED - invalid type 'byte' for arg 'x-dead-letter-exchange' "
        "in queue 'q' in vhost '/'")


@pytest.mark.parametrize(("durable", "exclusive", "prop"),
                         [(False, False, "non-durable"), (True, True, "exclusive-owner")])
def test_invalid_quorum_properties(w: World, durable: bool, exclusive: bool,
                                   prop: str) -> None:
    with pytest.raises(errors.ChannelError) as exc:
        w.vhost.declare_queue(w.session, "q", False, durable, exclusive, False, quorum())
    assert exc.value.reply_code == 406
    assert exc.value.reply_text == (
        f"PRECONDITION_FAILED - invalid property '{prop}' for queue 'q' in vhost '/'")


@pytest.mark.parametrize("arguments", [
    {"x-max-length": 0}, {"x-message-ttl": 0}, {"x-max-priority": 0},
    {"x-max-priority": 255}, {"x-expires": 1}, {"x-overflow": "reject-publish-dlx"},
    {"x-single-active-consumer": False}, {"x-queue-mode": "lazy"},
    dlx_args(),
])
def test_valid_queue_arguments(w: World, arguments: dict[str, Any]) -> None:
    queue = w.vhost.declare_queue(w.session, "q", False, False, False, False, arguments)
    assert w.queue("q") is queue


def test_255_byte_queue_name_is_accepted(w: World) -> None:
    name = "q" * 255
    assert w.vhost.declare_queue(w.session, name, False, False, False, False, {}).name == name


# --- resource alarms ----------------------------------------------------------------------------


def test_alarm_listeners_hear_only_blocked_state_changes() -> None:
    broker = Broker(timers=Timers(clock=FakeClock()))
    heard: list[bool] = []
    broker.alarm_listeners.append(heard.append)
    broker.set_alarm("memory", True)
    broker.set_alarm("disk", True)
    broker.set_alarm("memory", True)
    assert heard == [True]
    broker.set_alarm("memory", False)
    assert heard == [True]
    broker.set_alarm("disk", False)
    assert heard == [True, False]
    broker.set_alarm("disk", False)
    assert heard == [True, False]
    broker.set_alarm("disk", True)
    assert heard == [True, False, True]
