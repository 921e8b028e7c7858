"""§2.2 bind/unbind errors, and queue.unbind never failing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from amqp_conformance import Chan, Connect, Exchange, Queue, uniq

DEFAULT_X = "ACCESS_REFUSED - operation not permitted on the default exchange"
NO_X = "NOT_FOUND - no exchange '{name}' in vhost '/'"
NO_Q = "NOT_FOUND - no queue '{name}' in vhost '/'"

Action = Callable[[Chan, str, str], Any]


def bind(queue: str | None = None, exchange: str | None = None,
         arguments: dict[str, Any] | None = None) -> Action:
    return lambda ch, q, x: ch.queue_bind(queue if queue is not None else q,
                                          exchange if exchange is not None else x,
                                          "k", arguments, ok=False)


def xbind(destination: str | None = None, source: str | None = None) -> Action:
    return lambda ch, q, x: ch.send(Exchange.Bind(
        destination=destination if destination is not None else x,
        source=source if source is not None else x, routing_key="k"))


# id, create the queue?, exchange type to create (None: none), action, code, text, c/m
CASES: list[tuple[str, bool, str | None, Action, int, str, int, int]] = [
    ("queue-bind-default-exchange", True, None, bind(exchange=""), 403, DEFAULT_X, 50, 20),
    ("queue-unbind-default-exchange", True, None,
     lambda ch, q, x: ch.send(Queue.Unbind(queue=q, exchange="", routing_key=q)),
     403, DEFAULT_X, 50, 50),
    ("exchange-bind-default-source", False, "direct", xbind(source=""), 403, DEFAULT_X, 40, 30),
    ("exchange-bind-default-destination", False, "direct", xbind(destination=""), 403,
     DEFAULT_X, 40, 30),
    ("queue-bind-missing-exchange", True, None, bind(), 404, NO_X.format(name="{x}"), 50, 20),
    ("queue-bind-both-missing", False, None, bind(), 404, NO_X.format(name="{x}"), 50, 20),
    ("queue-bind-missing-queue", False, "direct", bind(), 404, NO_Q.format(name="{q}"), 50, 20),
    ("exchange-bind-missing-source", False, "direct", xbind(source="nosuch-src"), 404,
     NO_X.format(name="nosuch-src"), 40, 30),
    ("exchange-bind-missing-destination", False, "direct", xbind(destination="nosuch-dst"), 404,
     NO_X.format(name="nosuch-dst"), 40, 30),
    ("headers-bad-x-match", True, "headers", bind(arguments={"x-match": "bogus", "a": 1}), 406,
     'PRECONDITION_FAILED - Invalid x-match field value <<"bogus">>; expected all, any, '
     "all-with-x, or any-with-x", 50, 20),
]


@pytest.mark.parametrize(("make_queue", "make_exchange", "action", "code", "text", "class_id",
                          "method_id"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bind_errors(ch: Chan, make_queue: bool, make_exchange: str | None, action: Action,
                     code: int, text: str, class_id: int, method_id: int) -> None:
    q, x = uniq("q"), uniq("x")
    if make_queue:
        ch.queue_declare(q)
    if make_exchange:
        ch.exchange_declare(x, make_exchange)
    action(ch, q, x)
    ch.expect_channel_close(code, text.format(q=q, x=x), class_id, method_id)


@pytest.mark.parametrize(("make_queue", "make_exchange"), [
    (True, True), (False, True), (True, False), (False, False)],
    ids=["missing-binding", "missing-queue", "missing-exchange", "both-missing"])
def test_queue_unbind_never_fails(ch: Chan, make_queue: bool, make_exchange: bool) -> None:
    q, x = uniq("q"), uniq("x")
    if make_queue:
        ch.queue_declare(q)
    if make_exchange:
        ch.exchange_declare(x)
    ch.call(Queue.Unbind(queue=q, exchange=x, routing_key="nope"), Queue.UnbindOk)
    ch.sync()


def test_queue_unbind_other_connections_exclusive_queue_ok(connect: Connect) -> None:
    owner = connect().channel()
    q, x = uniq("q"), uniq("x")
    owner.queue_declare(q, exclusive=True)
    owner.exchange_declare(x)
    owner.queue_bind(q, x, "k")
    other = connect().channel()
    other.call(Queue.Unbind(queue=q, exchange=x, routing_key="k"), Queue.UnbindOk)


def test_bind_then_unbind_stops_routing(ch: Chan) -> None:
    q, x = uniq("q"), uniq("x")
    ch.queue_declare(q)
    ch.exchange_declare(x)
    ch.queue_bind(q, x, "k")
    ch.publish(x, "k", b"1")
    ch.call(Queue.Unbind(queue=q, exchange=x, routing_key="k"), Queue.UnbindOk)
    ch.publish(x, "k", b"2")
    assert ch.get_all(q) == [b"1"]


def test_exchange_to_exchange_binding_routes(ch: Chan) -> None:
    q, src, dst = uniq("q"), uniq("x"), uniq("x")
    ch.exchange_declare(src, "direct")
    ch.exchange_declare(dst, "fanout")
    ch.queue_declare(q)
    ch.queue_bind(q, dst)
    ch.call(Exchange.Bind(destination=dst, source=src, routing_key="k"), Exchange.BindOk)
    ch.publish(src, "k", b"hit")
    ch.publish(src, "other", b"miss")
    assert ch.get_all(q) == [b"hit"]
