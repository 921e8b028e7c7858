"""§2.1 declare/delete errors, the "not errors" list and argument equivalence."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from amqp_conformance import (
    Chan,
    Client,
    Connect,
    Exchange,
    Queue,
    double,
    long,
    make_connect,
    short,
    signedint,
    uniq,
)

from amqpbroker.testing import broker_in_thread

V = "/"
LOCKED = ("RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{q}' in vhost '/'. "
          "It could be originally declared on another connection or the exclusive property "
          "value does not match that of the original declaration.")

Step = Callable[[Chan, str, str], Any]


def nothing(ch: Chan, q: str, x: str) -> None:
    return None


def declare_q(**kwargs: Any) -> Step:
    return lambda ch, q, x: ch.queue_declare(q, **kwargs)


def redeclare_q(**kwargs: Any) -> Step:
    return lambda ch, q, x: ch.queue_declare(q, ok=False, **kwargs)


def declare_x(type_: str = "direct", **kwargs: Any) -> Step:
    return lambda ch, q, x: ch.exchange_declare(x, type_, **kwargs)


def redeclare_x(type_: str = "direct", **kwargs: Any) -> Step:
    return lambda ch, q, x: ch.exchange_declare(x, type_, ok=False, **kwargs)


def q_with_consumer(ch: Chan, q: str, x: str) -> None:
    ch.queue_declare(q)
    ch.consume(q)


def q_with_message(ch: Chan, q: str, x: str) -> None:
    ch.queue_declare(q)
    ch.publish("", q, b"m")
    ch.sync()


def x_with_binding(ch: Chan, q: str, x: str) -> None:
    ch.exchange_declare(x)
    ch.queue_declare(q)
    ch.queue_bind(q, x, "k")


TTL = "x-message-ttl"
INEQ_Q = "PRECONDITION_FAILED - inequivalent arg '{arg}' for queue '{q}' in vhost '/': "
INEQ_X = "PRECONDITION_FAILED - inequivalent arg '{arg}' for exchange '{x}' in vhost '/': "

# id, setup, action, conn?, code, text ({q}/{x} filled in), class, method
ERRORS: list[tuple[str, Step, Step, bool, int, str, int, int]] = [
    ("passive-missing-queue", nothing, redeclare_q(passive=True), False, 404,
     "NOT_FOUND - no queue '{q}' in vhost '/'", 50, 10),
    ("passive-missing-exchange", nothing, redeclare_x(passive=True), False, 404,
     "NOT_FOUND - no exchange '{x}' in vhost '/'", 40, 10),
    ("passive-missing-amq-exchange", nothing,
     lambda ch, q, x: ch.exchange_declare("amq." + x, passive=True, ok=False), False, 404,
     "NOT_FOUND - no exchange 'amq.{x}' in vhost '/'", 40, 10),
    ("queue-durable-differs", declare_q(), redeclare_q(durable=True), False, 406,
     INEQ_Q.format(arg="durable", q="{q}") + "received 'true' but current is 'false'", 50, 10),
    ("queue-auto-delete-differs", declare_q(), redeclare_q(auto_delete=True), False, 406,
     INEQ_Q.format(arg="auto_delete", q="{q}") + "received 'true' but current is 'false'",
     50, 10),
    ("queue-exclusive-added", declare_q(), redeclare_q(exclusive=True), False, 405,
     LOCKED, 50, 10),
    ("queue-exclusive-dropped", declare_q(exclusive=True), redeclare_q(), False, 405,
     LOCKED, 50, 10),
    ("queue-ttl-differs", declare_q(arguments={TTL: short(1000)}),
     redeclare_q(arguments={TTL: short(2000)}), False, 406,
     INEQ_Q.format(arg=TTL, q="{q}") + "received '2000' but current is '1000'", 50, 10),
    ("queue-arg-removed", declare_q(arguments={TTL: short(1000)}), redeclare_q(), False, 406,
     INEQ_Q.format(arg=TTL, q="{q}")
     + "received none but current is the value '1000' of type 'short'", 50, 10),
    ("queue-arg-added", declare_q(), redeclare_q(arguments={TTL: short(1000)}), False, 406,
     INEQ_Q.format(arg=TTL, q="{q}")
     + "received the value '1000' of type 'short' but current is none", 50, 10),
    ("queue-arg-int-vs-longstr", declare_q(arguments={TTL: short(1000)}),
     redeclare_q(arguments={TTL: "1000"}), False, 406,
     INEQ_Q.format(arg=TTL, q="{q}") + "received '1000' but current is '1000'", 50, 10),
    ("queue-arg-int-vs-double", declare_q(arguments={TTL: short(1000)}),
     redeclare_q(arguments={TTL: double(1000.0)}), False, 406,
     INEQ_Q.format(arg=TTL, q="{q}") + "received '1.0e3' but current is '1000'", 50, 10),
    ("exchange-type-differs", declare_x("direct"), redeclare_x("fanout"), False, 406,
     INEQ_X.format(arg="type", x="{x}") + "received 'fanout' but current is 'direct'", 40, 10),
    ("exchange-durable-differs", declare_x(), redeclare_x(durable=True), False, 406,
     INEQ_X.format(arg="durable", x="{x}") + "received 'true' but current is 'false'", 40, 10),
    ("exchange-auto-delete-differs", declare_x(), redeclare_x(auto_delete=True), False, 406,
     INEQ_X.format(arg="auto_delete", x="{x}") + "received 'true' but current is 'false'",
     40, 10),
    ("exchange-internal-differs", declare_x(), redeclare_x(internal=True), False, 406,
     INEQ_X.format(arg="internal", x="{x}") + "received 'true' but current is 'false'", 40, 10),
    ("exchange-alternate-exchange-added", declare_x(),
     redeclare_x(arguments={"alternate-exchange": "ae"}), False, 406,
     INEQ_X.format(arg="alternate-exchange", x="{x}")
     + "received the value 'ae' of type 'longstr' but current is none", 40, 10),
    ("unknown-exchange-type", nothing, redeclare_x("bogus"), True, 503,
     "COMMAND_INVALID - unknown exchange type 'bogus'", 40, 10),
    ("exchange-reserved-prefix", nothing,
     lambda ch, q, x: ch.exchange_declare("amq.foo" + x, ok=False), False, 403,
     "ACCESS_REFUSED - exchange name 'amq.foo{x}' contains reserved prefix 'amq.*'", 40, 10),
    ("queue-reserved-prefix", nothing,
     lambda ch, q, x: ch.queue_declare("amq.foo" + q, ok=False), False, 403,
     "ACCESS_REFUSED - queue name 'amq.foo{q}' contains reserved prefix 'amq.*'", 50, 10),
    ("declare-default-exchange", nothing,
     lambda ch, q, x: ch.exchange_declare("", ok=False), False, 403,
     "ACCESS_REFUSED - operation not permitted on the default exchange", 40, 10),
    ("passive-declare-default-exchange", nothing,
     lambda ch, q, x: ch.exchange_declare("", passive=True, ok=False), False, 403,
     "ACCESS_REFUSED - operation not permitted on the default exchange", 40, 10),
    ("delete-default-exchange", nothing,
     lambda ch, q, x: ch.send(Exchange.Delete(exchange="")), False, 403,
     "ACCESS_REFUSED - operation not permitted on the default exchange", 40, 20),
    ("queue-delete-if-unused-with-consumer", q_with_consumer,
     lambda ch, q, x: ch.send(Queue.Delete(queue=q, if_unused=True)), False, 406,
     "PRECONDITION_FAILED - queue '{q}' in vhost '/' in use", 50, 40),
    ("queue-delete-if-empty-with-message", q_with_message,
     lambda ch, q, x: ch.send(Queue.Delete(queue=q, if_empty=True)), False, 406,
     "PRECONDITION_FAILED - queue '{q}' in vhost '/' not empty", 50, 40),
    ("exchange-delete-if-unused-with-binding", x_with_binding,
     lambda ch, q, x: ch.send(Exchange.Delete(exchange=x, if_unused=True)), False, 406,
     "PRECONDITION_FAILED - exchange '{x}' in vhost '/' in use", 40, 20),
    ("purge-missing-queue", nothing,
     lambda ch, q, x: ch.send(Queue.Purge(queue=q)), False, 404,
     "NOT_FOUND - no queue '{q}' in vhost '/'", 50, 30),
]


@pytest.mark.parametrize(("setup", "action", "hard", "code", "text", "class_id", "method_id"),
                         [case[1:] for case in ERRORS], ids=[case[0] for case in ERRORS])
def test_declare_delete_errors(ch: Chan, setup: Step, action: Step, hard: bool, code: int,
                               text: str, class_id: int, method_id: int) -> None:
    q, x = uniq("q"), uniq("x")
    setup(ch, q, x)
    action(ch, q, x)
    ch.expect_error(hard, code, text.format(q=q, x=x), class_id, method_id)


PREDECLARED = [("amq.direct", "direct"), ("amq.fanout", "fanout"), ("amq.topic", "topic"),
               ("amq.headers", "headers"), ("amq.match", "headers")]


@pytest.fixture
def fresh() -> Iterator[Connect]:
    """A broker of its own, for tests that might damage shared state."""
    clients: list[Client] = []
    with broker_in_thread() as running:
        yield make_connect(running, clients)
        for client in clients:
            client.close()


@pytest.mark.parametrize("name", [name for name, _ in PREDECLARED] + ["amq.rabbitmq.trace"])
def test_delete_system_exchange_refused(fresh: Connect, name: str) -> None:
    ch = fresh().channel()
    ch.send(Exchange.Delete(exchange=name))
    ch.expect_channel_close(
        403, f"ACCESS_REFUSED - deletion of system exchange '{name}' in vhost '/' not allowed",
        40, 20)
    ch2 = ch.client.channel()
    ch2.exchange_declare(name, passive=True)


# --- not errors -------------------------------------------------------------------------


def test_delete_missing_queue_ok(ch: Chan) -> None:
    ok = ch.call(Queue.Delete(queue=uniq("q")), Queue.DeleteOk)
    assert ok.message_count == 0


def test_delete_missing_exchange_ok(ch: Chan) -> None:
    ch.call(Exchange.Delete(exchange=uniq("x")), Exchange.DeleteOk)


def test_delete_if_unused_with_messages_but_no_consumer_ok(ch: Chan) -> None:
    q = uniq("q")
    q_with_message(ch, q, "")
    ok = ch.call(Queue.Delete(queue=q, if_unused=True), Queue.DeleteOk)
    assert ok.message_count == 1
    ch.queue_declare(q, passive=True, ok=False)
    ch.expect_channel_close(404, f"NOT_FOUND - no queue '{q}' in vhost '/'", 50, 10)


@pytest.mark.parametrize(("name", "type_"), PREDECLARED)
def test_redeclare_predeclared_exchange_identical_ok(ch: Chan, name: str, type_: str) -> None:
    ch.exchange_declare(name, type_, durable=True)
    ch.exchange_declare(name, type_, passive=True)


def test_predeclared_trace_exchange_is_internal_topic(ch: Chan) -> None:
    ch.exchange_declare("amq.rabbitmq.trace", "topic", durable=True, internal=True)


@pytest.mark.parametrize(("kwargs", "detail"), [
    ({"type_": "fanout", "durable": True}, "'type' for exchange 'amq.direct' in vhost '/': "
     "received 'fanout' but current is 'direct'"),
    ({"type_": "direct", "durable": False}, "'durable' for exchange 'amq.direct' in vhost '/': "
     "received 'false' but current is 'true'"),
], ids=["type", "durable"])
def test_redeclare_predeclared_exchange_different(ch: Chan, kwargs: dict[str, Any],
                                                  detail: str) -> None:
    ch.exchange_declare("amq.direct", ok=False, **kwargs)
    ch.expect_channel_close(406, "PRECONDITION_FAILED - inequivalent arg " + detail, 40, 10)


def test_uppercase_amq_prefix_allowed(ch: Chan) -> None:
    x, q = "AMQ.foo" + uniq("x"), "AMQ.foo" + uniq("q")
    ch.exchange_declare(x)
    assert ch.queue_declare(q).queue == q


def test_passive_declare_ignores_differences(ch: Chan) -> None:
    q, x = uniq("q"), uniq("x")
    ch.queue_declare(q, arguments={TTL: short(1000)})
    ch.exchange_declare(x, "direct")
    ok = ch.queue_declare(q, passive=True, durable=True, auto_delete=True,
                          arguments={TTL: short(5)})
    assert (ok.queue, ok.message_count, ok.consumer_count) == (q, 0, 0)
    ch.exchange_declare(x, "fanout", passive=True, durable=True)


@pytest.mark.parametrize(("first", "second"), [
    ({"x-foo": 1}, {"x-foo": 2}),
    ({}, {"x-queue-type": "classic"}),
    ({"x-queue-type": "classic"}, {}),
    ({TTL: short(1000)}, {TTL: signedint(1000)}),
    ({TTL: short(1000)}, {TTL: long(1000)}),
    ({TTL: long(1000)}, {TTL: short(1000)}),
], ids=["unknown-x-arg", "queue-type-added", "queue-type-dropped", "short-signedint",
        "short-long", "long-short"])
def test_equivalent_arguments(ch: Chan, first: dict[str, Any], second: dict[str, Any]) -> None:
    q = uniq("q")
    ch.queue_declare(q, arguments=first)
    assert ch.queue_declare(q, arguments=second).queue == q


def test_server_named_queue(ch: Chan) -> None:
    ok = ch.queue_declare("")
    assert ok.queue.startswith("amq.gen-") and len(ok.queue) == 30
    assert set(ok.queue[8:]) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_delete_ok_counts_messages(ch: Chan) -> None:
    q = uniq("q")
    ch.queue_declare(q)
    for i in range(3):
        ch.publish("", q, b"%d" % i)
    assert ch.call(Queue.Delete(queue=q), Queue.DeleteOk).message_count == 3
