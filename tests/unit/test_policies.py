"""Unit tests for policies and operator policies on the broker model: validation texts,
matching (pattern, apply-to, priority), precedence against queue arguments, live
re-application, the store, restarts and definitions files. Time is a fake clock."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from test_lifecycle import World

from amqpbroker.broker.broker import Broker
from amqpbroker.broker.policies import PolicyError, erlang_term
from amqpbroker.broker.recovery import recover
from amqpbroker.definitions import DefinitionsError, apply, export, parse
from amqpbroker.store.sqlite import SqliteStore


@pytest.fixture
def w() -> World:
    return World()


def no_messages(*args: Any) -> Any:
    raise AssertionError("no messages were stored")


# --- validation -------------------------------------------------------------------------


@pytest.mark.parametrize(("definition", "detail"), [
    ({"message-ttl": "x"}, '<<"x">> is not a valid message TTL'),
    ({"message-ttl": -1}, "-1 is not a valid message TTL"),
    ({"message-ttl": 1.5}, "1.5 is not a valid message TTL"),
    ({"message-ttl": 1000.0}, "1.0e3 is not a valid message TTL"),
    ({"message-ttl": True}, "true is not a valid message TTL"),
    ({"expires": 0}, "0 is not a valid queue expiry"),
    ({"max-length": -1}, "-1 is not a valid maximum length"),
    ({"max-length-bytes": "10"}, '<<"10">> is not a valid maximum length in bytes'),
    ({"dead-letter-exchange": 1}, "1 is not a valid dead letter exchange name"),
    ({"dead-letter-routing-key": None}, "null is not a valid dead letter routing key"),
    ({"alternate-exchange": ["a", 1]}, '[<<"a">>,1] is not a valid alternate exchange name'),
    ({"overflow": "drop-tail"}, '<<"drop-tail">> is not a valid overflow value'),
    ({"delivery-limit": -2}, "-2 is not a valid delivery limit"),
    ({"queue-mode": "eager"}, '<<"eager">> is not a valid queue-mode value'),
    ({"queue-version": 3}, "3 is not a valid queue version"),
    ({"consumer-timeout": -1}, "-1 is not a valid consumer timeout"),
    ({"foo": 1}, '[{<<"foo">>,1}] are not recognised policy settings'),
    ({"b": "x", "a": 1, "max-length": 5},
     '[{<<"a">>,1},{<<"b">>,<<"x">>}] are not recognised policy settings'),
    ({"foo": 1, "max-length": "x"}, '<<"x">> is not a valid maximum length'),
    ({}, "no policy provided"),
])
def test_invalid_definitions_are_refused_with_rabbitmq_texts(
        w: World, definition: dict[str, Any], detail: str) -> None:
    with pytest.raises(PolicyError) as caught:
        w.vhost.set_policy("p", ".*", definition)
    assert caught.value.detail == detail
    assert str(caught.value) == f"Validation failed\n\n{detail}\n"
    assert w.vhost.policies == {}


def test_invalid_pattern_apply_to_and_priority(w: World) -> None:
    with pytest.raises(PolicyError) as caught:
        w.vhost.set_policy("p", "(", {"max-length": 1}, priority="high", apply_to="topics")
    lines = caught.value.detail.split("\n")
    assert lines[0].startswith("apply-to 'topics' unrecognised; should be one of: 'queues'")
    assert lines[1].startswith("pattern should be regular expression but is invalid: ")
    assert lines[2] == 'priority should be a number, actually was <<"high">>'


def test_operator_policies_take_only_the_numeric_caps(w: World) -> None:
    with pytest.raises(PolicyError, match=r'\[\{<<"dead-letter-exchange">>,<<"dlx">>\}\] '
                                          "are not recognised policy settings"):
        w.vhost.set_policy("op", ".*", {"dead-letter-exchange": "dlx"}, operator=True)
    policy = w.vhost.set_policy("op", ".*", {"max-length": 10, "message-ttl": 5,
                                             "expires": 100, "max-length-bytes": 1,
                                             "delivery-limit": 2}, operator=True)
    assert w.vhost.operator_policies == {"op": policy} and w.vhost.policies == {}


def test_mirroring_and_federation_keys_are_accepted_with_a_warning(
        w: World, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="amqpbroker.policies"):
        w.vhost.set_policy("ha", ".*", {"ha-mode": "all", "ha-sync-mode": "automatic",
                                        "federation-upstream-set": "all",
                                        "max-length": 3})
    (record,) = caplog.records
    assert record.name == "amqpbroker.policies"
    assert "federation-upstream-set, ha-mode, ha-sync-mode" in record.getMessage()
    w.declare_queue("q")
    assert w.queue("q").max_length == 3


def test_erlang_terms() -> None:
    assert erlang_term("a\"b") == '<<"a\\"b">>'
    assert erlang_term("é") == '<<"é"/utf8>>'
    assert erlang_term({"k": [1, False]}) == '#{<<"k">> => [1,false]}'
    assert erlang_term([104, 105]) == '"hi"'  # Erlang prints a printable list as a string
    assert erlang_term(0.5) == "0.5"


# --- matching ---------------------------------------------------------------------------


def test_pattern_is_searched_not_anchored(w: World) -> None:
    w.vhost.set_policy("p", r"ord", {"max-length": 1}, apply_to="queues")
    for name in ("orders", "new-orders", "other"):
        w.declare_queue(name)
    assert w.queue("orders").policy is w.vhost.policies["p"]
    assert w.queue("new-orders").policy is w.vhost.policies["p"]
    assert w.queue("other").policy is None
    assert w.queue("other").effective_policy_definition == {}


def test_apply_to(w: World) -> None:
    vhost = w.vhost
    vhost.set_policy("queues", "^a$", {"max-length": 1}, apply_to="queues")
    vhost.set_policy("exchanges", "^b$", {"alternate-exchange": "ae"}, apply_to="exchanges")
    vhost.set_policy("all", "^c$", {"max-length": 2, "alternate-exchange": "ae"})
    vhost.set_policy("quorum", "^d$", {"max-length": 3}, apply_to="quorum_queues")
    vhost.set_policy("classic", "^e$", {"max-length": 4}, apply_to="classic_queues")
    for name in "abcde":
        w.declare_queue(name, durable=True)
        w.declare_exchange(name, "direct")
    w.declare_queue("d-quorum", arguments={"x-queue-type": "quorum"}, durable=True)
    vhost.set_policy("quorum", "^d", {"max-length": 3}, apply_to="quorum_queues")
    queues = {name: q.policy.name if q.policy else None for name, q in vhost.queues.items()}
    assert queues == {"a": "queues", "b": None, "c": "all", "d": None, "e": "classic",
                      "d-quorum": "quorum"}
    exchanges = {name: vhost.exchanges[name].policy for name in "abcde"}
    assert {k: p.name for k, p in exchanges.items() if p} == {"b": "exchanges", "c": "all"}
    assert vhost.exchanges["c"].alternate == "ae" and vhost.exchanges["a"].alternate is None


def test_highest_priority_wins_ties_by_name(w: World) -> None:
    vhost = w.vhost
    vhost.set_policy("low", "^q", {"max-length": 1}, priority=1)
    vhost.set_policy("high", "^q", {"max-length": 5}, priority=10)
    w.declare_queue("q")
    assert w.queue("q").policy.name == "high" and w.queue("q").max_length == 5
    vhost.set_policy("also-high", "^q", {"max-length": 7}, priority=10)
    assert w.queue("q").policy.name == "also-high"  # same priority: first by name
    vhost.clear_policy("also-high")
    vhost.clear_policy("high")
    assert w.queue("q").policy.name == "low" and w.queue("q").max_length == 1


def test_one_policy_at_a_time_its_keys_do_not_merge(w: World) -> None:
    w.vhost.set_policy("ttl", "^q", {"message-ttl": 1000}, priority=1)
    w.vhost.set_policy("len", "^q", {"max-length": 2}, priority=2)
    w.declare_queue("q")
    queue = w.queue("q")
    assert (queue.max_length, queue.message_ttl) == (2, None)


def test_a_queue_type_skips_policies_with_keys_it_does_not_support(w: World) -> None:
    """RabbitMQ's is_policy_applicable: delivery-limit is a quorum queue setting, so a
    policy holding it does not apply to a classic queue at all; queue-mode is classic."""
    w.vhost.set_policy("limit", ".*", {"delivery-limit": 3, "max-length": 10})
    w.vhost.set_policy("lazy", ".*", {"queue-mode": "lazy", "max-length": 20}, priority=-1)
    w.declare_queue("classic")
    w.declare_queue("quorum", arguments={"x-queue-type": "quorum"}, durable=True)
    classic, quorum = w.queue("classic"), w.queue("quorum")
    assert classic.policy.name == "lazy" and classic.max_length == 20
    assert classic.delivery_limit is None
    assert quorum.policy.name == "limit" and (quorum.delivery_limit, quorum.max_length) == (3, 10)


# --- precedence -------------------------------------------------------------------------


def test_numeric_settings_take_the_smaller_of_argument_and_policy(w: World) -> None:
    w.vhost.set_policy("p", ".*", {"message-ttl": 5000, "max-length": 10, "expires": 60000,
                                   "max-length-bytes": 100, "consumer-timeout": 1000})
    w.declare_queue("small", arguments={"x-message-ttl": 1000, "x-max-length": 3,
                                        "x-expires": 30000, "x-max-length-bytes": 1000})
    w.declare_queue("large", arguments={"x-message-ttl": 9000, "x-max-length": 30})
    small, large = w.queue("small"), w.queue("large")
    assert (small.message_ttl, small.max_length, small.expires, small.max_length_bytes) == (
        1.0, 3, 30.0, 100)
    assert (large.message_ttl, large.max_length, large.expires, large.consumer_timeout) == (
        5.0, 10, 60.0, 1.0)
    assert large.effective_arguments == {"x-message-ttl": 5000, "x-max-length": 10,
                                         "x-expires": 60000, "x-max-length-bytes": 100,
                                         "x-consumer-timeout": 1000}
    assert large.arguments == {"x-message-ttl": 9000, "x-max-length": 30}


def test_dead_letter_settings_and_overflow_prefer_the_argument(w: World) -> None:
    w.vhost.set_policy("p", ".*", {"dead-letter-exchange": "pdlx",
                                   "dead-letter-routing-key": "pkey",
                                   "overflow": "reject-publish"}, apply_to="queues")
    w.declare_queue("args", arguments={"x-dead-letter-exchange": "",
                                       "x-dead-letter-routing-key": "akey",
                                       "x-overflow": "drop-head"})
    w.declare_queue("plain")
    args, plain = w.queue("args"), w.queue("plain")
    assert (args.dead_letter_exchange, args.dead_letter_routing_key, args.overflow) == (
        "", "akey", "drop-head")
    assert (plain.dead_letter_exchange, plain.dead_letter_routing_key, plain.overflow) == (
        "pdlx", "pkey", "reject-publish")


def test_a_quorum_queue_prefers_the_policy_overflow(w: World) -> None:
    """rabbit_quorum_queue resolves overflow with the policy first."""
    w.vhost.set_policy("p", ".*", {"overflow": "reject-publish"})
    w.declare_queue("qq", arguments={"x-queue-type": "quorum", "x-overflow": "drop-head"},
                    durable=True)
    assert w.queue("qq").overflow == "reject-publish"


def test_operator_policy_caps_policy_and_arguments(w: World) -> None:
    vhost = w.vhost
    vhost.set_policy("p", ".*", {"max-length": 100, "message-ttl": 1000,
                                 "dead-letter-exchange": "dlx"})
    vhost.set_policy("cap", ".*", {"max-length": 50, "expires": 90000}, operator=True)
    w.declare_queue("q", arguments={"x-max-length": 70, "x-expires": 120000})
    w.declare_queue("tiny", arguments={"x-max-length": 5})
    queue = w.queue("q")
    assert queue.policy.name == "p" and queue.operator_policy.name == "cap"
    assert (queue.max_length, queue.expires, queue.message_ttl) == (50, 90.0, 1.0)
    assert queue.effective_policy_definition == {
        "dead-letter-exchange": "dlx", "expires": 90000, "max-length": 50,
        "message-ttl": 1000}
    assert w.queue("tiny").max_length == 5
    vhost.set_policy("cap", ".*", {"max-length": 500}, operator=True)
    assert queue.max_length == 70 and queue.expires == 120.0


def test_alternate_exchange_argument_wins_over_the_policy(w: World) -> None:
    w.vhost.set_policy("ae", ".*", {"alternate-exchange": "unrouted"}, apply_to="exchanges")
    w.declare_exchange("with-arg", "direct", {"alternate-exchange": "mine"})
    w.declare_exchange("plain", "direct")
    assert w.vhost.exchanges["with-arg"].alternate == "mine"
    assert w.vhost.exchanges["plain"].alternate == "unrouted"
    assert w.vhost.exchanges["plain"].effective_policy_definition == {
        "alternate-exchange": "unrouted"}
    assert w.vhost.exchanges["amq.direct"].alternate == "unrouted"  # amq.* match too


def test_policy_alternate_exchange_routes_unroutable_messages(w: World) -> None:
    w.declare_exchange("x", "direct")
    w.declare_exchange("unrouted", "fanout")
    w.declare_queue("lost")
    w.bind("lost", "unrouted")
    w.publish("x", "nowhere", b"1")
    w.vhost.set_policy("ae", "^x$", {"alternate-exchange": "unrouted"}, apply_to="exchanges")
    w.publish("x", "nowhere", b"2")
    w.vhost.clear_policy("ae")
    w.publish("x", "nowhere", b"3")
    assert w.bodies("lost") == [b"2"]


# --- live changes -----------------------------------------------------------------------


def test_lowering_max_length_drops_the_head_at_once_and_dead_letters_it(w: World) -> None:
    w.declare_exchange("dlx", "fanout")
    w.declare_queue("dead")
    w.bind("dead", "dlx")
    w.declare_queue("q")
    for n in range(5):
        w.publish("", "q", str(n).encode())
    w.vhost.set_policy("cap", "^q$", {"max-length": 2, "dead-letter-exchange": "dlx"})
    assert w.count("q") == 2
    assert w.bodies("dead") == [b"0", b"1", b"2"]
    dead = w.vhost.queues["dead"]
    assert dead.policy is None  # "^q$" does not match "dead"
    assert w.bodies("q") == [b"3", b"4"]


def test_reject_publish_keeps_what_is_queued(w: World) -> None:
    w.declare_queue("q")
    for n in range(3):
        w.publish("", "q", str(n).encode())
    w.vhost.set_policy("cap", "^q$", {"max-length": 1, "overflow": "reject-publish"})
    w.publish("", "q", b"refused")
    assert w.bodies("q") == [b"0", b"1", b"2"]


def test_clearing_a_policy_restores_the_arguments(w: World) -> None:
    w.declare_queue("q", arguments={"x-max-length": 3})
    w.vhost.set_policy("cap", ".*", {"max-length": 1})
    assert w.queue("q").max_length == 1
    assert w.vhost.clear_policy("cap") is True
    assert w.vhost.clear_policy("cap") is False
    queue = w.queue("q")
    assert (queue.policy, queue.max_length, queue.effective_policy_definition) == (None, 3, {})
    for n in range(5):
        w.publish("", "q", str(n).encode())
    assert w.bodies("q") == [b"2", b"3", b"4"]


def test_message_ttl_counts_for_messages_enqueued_after_the_policy(w: World) -> None:
    """As RabbitMQ (observed): a message's expiry is fixed when it is enqueued."""
    w.declare_queue("q")
    w.publish("", "q", b"before")
    w.vhost.set_policy("ttl", ".*", {"message-ttl": 1000})
    w.publish("", "q", b"after")
    w.advance(0.5)
    w.vhost.set_policy("ttl", ".*", {"message-ttl": 60000})
    w.publish("", "q", b"later")
    w.advance(1.0)
    # 'after' expired at 1 s, but 'before' (no TTL) at the head keeps it, as in RabbitMQ.
    assert w.count("q") == 3
    assert w.bodies("q") == [b"before", b"later"]


def test_message_ttl_from_a_policy_expires_messages_on_time(w: World) -> None:
    w.declare_queue("q")
    w.vhost.set_policy("ttl", ".*", {"message-ttl": 200})
    w.publish("", "q", b"x")
    w.advance(0.19)
    assert w.count("q") == 1
    w.advance(0.01)
    assert w.count("q") == 0


def test_queue_expiry_restarts_with_the_new_value(w: World) -> None:
    w.declare_queue("q", arguments={"x-expires": 10000})
    w.advance(5)
    w.vhost.set_policy("exp", ".*", {"expires": 3000})
    w.advance(2.9)
    assert w.queue("q") is not None
    w.advance(0.2)
    assert w.queue("q") is None


def test_clearing_the_expiry_stops_the_timer(w: World) -> None:
    w.vhost.set_policy("exp", ".*", {"expires": 1000})
    w.declare_queue("q")
    w.vhost.clear_policy("exp")
    w.advance(5)
    assert w.queue("q") is not None


def test_delivery_limit_from_a_policy(w: World) -> None:
    w.declare_queue("qq", arguments={"x-queue-type": "quorum"}, durable=True)
    assert w.queue("qq").delivery_limit == 20  # RabbitMQ's default for quorum queues
    w.vhost.set_policy("limit", ".*", {"delivery-limit": 1}, apply_to="quorum_queues")
    w.publish("", "qq", b"m")
    got = w.get("qq")
    assert got is not None
    w.reject(got[0], requeue=True)
    got = w.get("qq")
    assert got is not None and got[1] is True
    w.reject(got[0], requeue=True)
    assert w.count("qq") == 0


# --- the store and restarts -------------------------------------------------------------


def test_set_and_clear_are_recorded_once(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path))
    broker = Broker(store=store)
    vhost = broker.vhosts["/"]
    store.take_batch()
    vhost.set_policy("p", ".*", {"max-length": 1}, priority=2, apply_to="queues")
    batch = store.take_batch()
    assert batch.definitions == [("put_runtime", ("policy", "/\x00p", {
        "vhost": "/", "name": "p", "pattern": ".*", "apply-to": "queues",
        "definition": {"max-length": 1}, "priority": 2}))]
    vhost.set_policy("p", ".*", {"max-length": 1}, priority=2, apply_to="queues")
    assert not store.pending
    vhost.set_policy("p", ".*", {"max-length": 1}, operator=True)
    vhost.clear_policy("p")
    assert [d[1][:2] for d in store.take_batch().definitions] == [
        ("operator_policy", "/\x00p"), ("policy", "/\x00p")]
    store.close()


def test_policies_survive_a_restart(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path))
    broker = Broker(store=store)
    other = broker.add_vhost("other")
    other.set_policy("len", "^q", {"max-length": 2, "dead-letter-exchange": "dlx"},
                     priority=3, apply_to="queues")
    other.set_policy("cap", ".*", {"max-length": 1}, operator=True)
    other.set_policy("ae", "^x", {"alternate-exchange": "unrouted"}, apply_to="exchanges")
    other.declare_queue(None, "q1", False, True, False, False, {})
    other.declare_exchange("x1", "direct", False, True, False, False, {})
    store.write_batch(store.take_batch())
    store.close()

    store = SqliteStore(str(tmp_path))
    restarted = Broker(store=store)
    recover(restarted, store.load(), no_messages)
    host = restarted.vhosts["other"]
    assert set(host.policies) == {"len", "ae"} and set(host.operator_policies) == {"cap"}
    queue = host.queues["q1"]
    assert (queue.policy.name, queue.operator_policy.name) == ("len", "cap")
    assert (queue.max_length, queue.dead_letter_exchange) == (1, "dlx")
    assert host.exchanges["x1"].alternate == "unrouted"
    assert not store.pending  # restoring records nothing
    store.close()


# --- definitions files ------------------------------------------------------------------


POLICY = {"vhost": "/", "name": "ttl", "pattern": "^q\\.", "apply-to": "queues",
          "definition": {"message-ttl": 1000}, "priority": 0}
OPERATOR_POLICY = {"vhost": "/", "name": "cap", "pattern": ".*", "apply-to": "queues",
                   "definition": {"max-length": 10}, "priority": 1}


def test_definitions_import_and_export_policies() -> None:
    document = {"policies": [POLICY], "operator_policies": [OPERATOR_POLICY],
                "queues": [{"name": "q.a", "vhost": "/", "durable": True,
                            "auto_delete": False, "arguments": {}}]}
    definitions = parse(document, "defs.json")
    assert "1 policies, 1 operator policies" in definitions.summary()
    broker = Broker()
    apply(broker, definitions)
    queue = broker.vhosts["/"].queues["q.a"]
    assert (queue.message_ttl, queue.max_length) == (1.0, 10)
    exported = export(broker)
    assert exported["policies"] == [POLICY]
    assert exported["operator_policies"] == [OPERATOR_POLICY]
    fresh = Broker()
    apply(fresh, parse(exported))
    assert export(fresh) == exported


def test_definitions_defaults_for_policies() -> None:
    definitions = parse({"policies": [{"vhost": "/", "name": "p", "pattern": "",
                                       "definition": {"max-length": 1}}]})
    broker = Broker()
    apply(broker, definitions)
    policy = broker.vhosts["/"].policies["p"]
    assert (policy.apply_to, policy.priority) == ("all", 0)


@pytest.mark.parametrize(("entry", "problem"), [
    ({**POLICY, "definition": {"message-ttl": "x"}},
     "policies[0] (policy 'ttl' in vhost '/'): <<\"x\">> is not a valid message TTL"),
    ({**POLICY, "definition": {"foo": 1}},
     "policies[0] (policy 'ttl' in vhost '/'): [{<<\"foo\">>,1}] are not recognised "
     "policy settings"),
    ({**POLICY, "apply-to": "nothing"},
     "policies[0] (policy 'ttl' in vhost '/'): apply-to 'nothing' unrecognised"),
    ({key: value for key, value in POLICY.items() if key != "pattern"},
     "policies[0] (policy 'ttl' in vhost '/'): 'pattern' is missing"),
    ({**POLICY, "name": ""}, "policies[0]: 'name' must not be empty"),
])
def test_definitions_policy_errors_name_the_entry(entry: dict[str, Any], problem: str) -> None:
    with pytest.raises(DefinitionsError) as caught:
        parse({"policies": [entry]}, "defs.json")
    assert str(caught.value).startswith(f"defs.json: {problem}")


def test_definitions_operator_policy_errors_name_the_entry() -> None:
    entry = {**OPERATOR_POLICY, "definition": {"overflow": "reject-publish"}}
    with pytest.raises(DefinitionsError, match=r"^defs.json: operator_policies\[0\] "
                       r"\(operator policy 'cap' in vhost '/'\): \[\{<<\"overflow\">>"):
        parse({"operator_policies": [entry]}, "defs.json")


def test_definitions_policy_in_an_unknown_vhost() -> None:
    definitions = parse({"policies": [{**POLICY, "vhost": "nowhere"}]}, "defs.json")
    broker = Broker()
    with pytest.raises(DefinitionsError, match=r"policies\[0\] .*unknown vhost 'nowhere'"):
        apply(broker, definitions)
    assert broker.vhosts["/"].policies == {}


def test_reapplying_definitions_with_policies_records_nothing(tmp_path: Path) -> None:
    definitions = parse({"policies": [POLICY], "operator_policies": [OPERATOR_POLICY]})
    store = SqliteStore(str(tmp_path))
    broker = Broker(store=store)
    recover(broker, store.load(), no_messages)
    apply(broker, definitions)
    store.write_batch(store.take_batch())
    store.close()

    store = SqliteStore(str(tmp_path))
    restarted = Broker(store=store)
    recover(restarted, store.load(), no_messages)
    apply(restarted, definitions)
    assert not store.pending
    assert export(restarted)["policies"] == [POLICY]
    store.close()
