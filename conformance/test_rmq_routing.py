"""§5 routing: the topic table and the headers exchange's matching rules."""

from __future__ import annotations

from typing import Any

import pytest
from amqp_conformance import VOID, Chan, byte, long, short, signedint, uniq

KEYS = ["", "a", "a.b", "a.b.c", "a..c", "a.c", ".", "a.b.b.c", "c", "x.y", "A.b"]
ALL_BUT_EMPTY = [k for k in KEYS if k]

TOPIC = [
    ("#", KEYS),
    ("#.#", KEYS),
    ("*.#", ALL_BUT_EMPTY),
    ("#.*", ALL_BUT_EMPTY),
    ("a.#", ["a", "a.b", "a.b.c", "a..c", "a.c", "a.b.b.c"]),
    ("A.#", ["A.b"]),
    ("#.c", ["a.b.c", "a..c", "a.c", "a.b.b.c", "c"]),
    ("#.b.#", ["a.b", "a.b.c", "a.b.b.c", "A.b"]),
    ("a.*.c", ["a.b.c", "a..c"]),
    ("a.#.c", ["a.b.c", "a..c", "a.c", "a.b.b.c"]),
    ("a.#.#.c", ["a.b.c", "a..c", "a.c", "a.b.b.c"]),
    ("a.*.#", ["a.b", "a.b.c", "a..c", "a.c", "a.b.b.c"]),
    ("*", ["a", "c"]),
    ("a.*", ["a.b", "a.c"]),
    ("*.*", ["a.b", "a.c", ".", "x.y", "A.b"]),
    ("", [""]),
    ("a..c", ["a..c"]),
]


@pytest.mark.parametrize(("binding", "matches"), TOPIC, ids=[repr(b) for b, _ in TOPIC])
def test_topic_binding(ch: Chan, binding: str, matches: list[str]) -> None:
    x, q = uniq("x"), uniq("q")
    ch.exchange_declare(x, "topic")
    ch.queue_declare(q)
    ch.queue_bind(q, x, binding)
    for key in KEYS:
        ch.publish(x, key, key.encode() or b"<empty>")
    got = [body.decode() for body in ch.get_all(q)]
    assert got == [key or "<empty>" for key in matches]


def test_topic_one_queue_per_binding_key(ch: Chan) -> None:
    x = uniq("x")
    ch.exchange_declare(x, "topic")
    queues = {}
    for binding, _ in TOPIC:
        queues[binding] = ch.queue_declare(uniq("q")).queue
        ch.queue_bind(queues[binding], x, binding)
    for key in KEYS:
        ch.publish(x, key, key.encode() or b"<empty>")
    got = {binding: [b.decode() for b in ch.get_all(q)] for binding, q in queues.items()}
    assert got == {binding: [k or "<empty>" for k in matches] for binding, matches in TOPIC}


def test_topic_two_bindings_one_copy(ch: Chan) -> None:
    x, q = uniq("x"), uniq("q")
    ch.exchange_declare(x, "topic")
    ch.queue_declare(q)
    ch.queue_bind(q, x, "a.*")
    ch.queue_bind(q, x, "#")
    ch.publish(x, "a.b", b"once")
    assert ch.get_all(q) == [b"once"]


NO_HEADERS = None

# id, binding arguments, message headers (None: no headers property), routed?
HEADERS: list[tuple[str, dict[str, Any], dict[str, Any] | None, bool]] = [
    ("no-args-no-headers", {}, NO_HEADERS, True),
    ("no-args-any-headers", {}, {"a": 1}, True),
    # RabbitMQ's headers_match starts `any` at false: with no keys, nothing matches.
    ("only-x-match-any", {"x-match": "any"}, NO_HEADERS, False),
    ("only-x-match-all", {"x-match": "all"}, {"z": 9}, True),
    ("default-is-all-miss", {"a": 1, "b": 2}, {"a": 1}, False),
    ("default-is-all-hit", {"a": 1, "b": 2}, {"a": 1, "b": 2}, True),
    ("all-extra-headers-fine", {"x-match": "all", "a": 1, "b": 2}, {"a": 1, "b": 2, "c": 3}, True),
    ("all-one-differs", {"x-match": "all", "a": 1, "b": 2}, {"a": 1, "b": 3}, False),
    ("all-no-headers", {"x-match": "all", "a": 1}, NO_HEADERS, False),
    ("any-one-matches", {"x-match": "any", "a": 1, "b": 2}, {"b": 2}, True),
    ("any-none-match", {"x-match": "any", "a": 1, "b": 2}, {"a": 2, "c": 3}, False),
    ("any-no-headers", {"x-match": "any", "a": 1}, NO_HEADERS, False),
    ("all-ignores-x-keys-no-headers", {"x-match": "all", "x-foo": 1}, NO_HEADERS, True),
    ("all-ignores-x-keys-other-value", {"x-match": "all", "x-foo": 1}, {"x-foo": 2}, True),
    ("all-ignores-x-keys-with-real-key", {"x-match": "all", "x-foo": 1, "a": 1}, {"a": 1}, True),
    ("any-only-x-keys-matches-nothing", {"x-match": "any", "x-foo": 1}, {"x-foo": 1}, False),
    ("any-only-x-keys-no-headers", {"x-match": "any", "x-foo": 1}, NO_HEADERS, False),
    ("any-x-key-ignored-real-key-hit", {"x-match": "any", "x-foo": 1, "a": 1}, {"a": 1}, True),
    ("any-x-key-ignored-x-only", {"x-match": "any", "x-foo": 1, "a": 1}, {"x-foo": 1}, False),
    ("all-with-x-hit", {"x-match": "all-with-x", "x-foo": 1}, {"x-foo": 1}, True),
    ("all-with-x-miss", {"x-match": "all-with-x", "x-foo": 1}, {"x-foo": 2}, False),
    ("all-with-x-no-headers", {"x-match": "all-with-x", "x-foo": 1}, NO_HEADERS, False),
    ("all-with-x-needs-both", {"x-match": "all-with-x", "x-foo": 1, "a": 1}, {"a": 1}, False),
    ("any-with-x-x-key-hit", {"x-match": "any-with-x", "x-foo": 1, "a": 2}, {"x-foo": 1}, True),
    ("any-with-x-miss", {"x-match": "any-with-x", "x-foo": 1}, {"x-foo": 2}, False),
    ("int-byte-vs-long", {"a": byte(1)}, {"a": long(1)}, True),
    ("int-signedint-vs-byte", {"a": signedint(1)}, {"a": byte(1)}, True),
    ("int-short-vs-signedint", {"a": short(1)}, {"a": signedint(1)}, True),
    ("int-vs-string", {"a": 1}, {"a": "1"}, False),
    ("string-vs-int", {"a": "1"}, {"a": 1}, False),
    ("bool-vs-int", {"a": True}, {"a": 1}, False),
    ("int-vs-bool", {"a": 1}, {"a": True}, False),
    ("bool-vs-bool", {"a": True}, {"a": True}, True),
    ("bool-false-vs-true", {"a": False}, {"a": True}, False),
    ("string-vs-string", {"a": "v"}, {"a": "v"}, True),
    ("string-differs", {"a": "v"}, {"a": "w"}, False),
    ("void-matches-any-value", {"a": VOID}, {"a": "anything"}, True),
    ("void-matches-int", {"a": VOID}, {"a": 5}, True),
    ("void-needs-the-key", {"a": VOID}, {"b": 1}, False),
    ("void-any-with-other", {"x-match": "any", "a": VOID, "b": 1}, {"a": 0}, True),
]


@pytest.mark.parametrize(("arguments", "headers", "routed"), [c[1:] for c in HEADERS],
                         ids=[c[0] for c in HEADERS])
def test_headers_exchange(ch: Chan, arguments: dict[str, Any], headers: dict[str, Any] | None,
                          routed: bool) -> None:
    x, q = uniq("x"), uniq("q")
    ch.exchange_declare(x, "headers")
    ch.queue_declare(q)
    ch.queue_bind(q, x, "ignored", arguments)
    ch.publish_with_headers(x, "whatever", headers, b"probe")
    assert ch.get_all(q) == ([b"probe"] if routed else [])


def test_amq_match_is_a_headers_exchange(ch: Chan) -> None:
    q = uniq("q")
    ch.queue_declare(q)
    ch.queue_bind(q, "amq.match", "", {"x-match": "all", "tag": q})
    ch.publish_with_headers("amq.match", "", {"tag": q}, b"hit")
    ch.publish_with_headers("amq.match", "", {"tag": "other"}, b"miss")
    assert ch.get_all(q) == [b"hit"]


def test_direct_and_fanout_routing(ch: Chan) -> None:
    d, f, q1, q2 = uniq("x"), uniq("x"), uniq("q"), uniq("q")
    ch.exchange_declare(d, "direct")
    ch.exchange_declare(f, "fanout")
    for q in (q1, q2):
        ch.queue_declare(q)
        ch.queue_bind(q, f, "ignored")
    ch.queue_bind(q1, d, "k1")
    ch.publish(d, "k1", b"direct")
    ch.publish(d, "K1", b"case")
    ch.publish(f, "anything", b"fan")
    assert (ch.get_all(q1), ch.get_all(q2)) == ([b"direct", b"fan"], [b"fan"])
