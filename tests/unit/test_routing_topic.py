"""Unit tests for the topic exchange router: RabbitMQ's table, a property test, cleanup."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amqpbroker.broker.routing import ROUTERS, TopicRouter
from amqpbroker.broker.routing.topic import CACHE_SIZE

KEYS = ["", "a", "a.b", "a.b.c", "a..c", "a.c", ".", "a.b.b.c", "c", "x.y", "A.b"]

TABLE: list[tuple[str, set[str]]] = [
    ("#", set(KEYS)),
    ("#.#", set(KEYS)),
    ("*.#", set(KEYS) - {""}),
    ("#.*", set(KEYS) - {""}),
    ("a.#", {"a", "a.b", "a.b.c", "a..c", "a.c", "a.b.b.c"}),
    ("A.#", {"A.b"}),
    ("#.c", {"a.b.c", "a..c", "a.c", "a.b.b.c", "c"}),
    ("#.b.#", {"a.b", "a.b.c", "a.b.b.c", "A.b"}),
    ("a.*.c", {"a.b.c", "a..c"}),
    ("a.#.c", {"a.b.c", "a..c", "a.c", "a.b.b.c"}),
    ("a.#.#.c", {"a.b.c", "a..c", "a.c", "a.b.b.c"}),
    ("a.*.#", {"a.b", "a.b.c", "a..c", "a.c", "a.b.b.c"}),
    ("*", {"a", "c"}),
    ("a.*", {"a.b", "a.c"}),
    ("*.*", {"a.b", "a.c", ".", "x.y", "A.b"}),
    ("", {""}),
    ("a..c", {"a..c"}),
]


def routed(router: TopicRouter, routing_key: str) -> set:
    out: set = set()
    router.route(routing_key, None, out)
    return out


def is_empty(router: TopicRouter) -> bool:
    root = router._root
    return not root.children and not root.dests


def test_registered() -> None:
    assert ROUTERS["topic"] is TopicRouter


@pytest.mark.parametrize(("binding_key", "expected"), TABLE, ids=[repr(k) for k, _ in TABLE])
def test_rabbitmq_table(binding_key: str, expected: set[str]) -> None:
    router = TopicRouter()
    router.add("q", binding_key, {})
    matched = {key for key in KEYS if routed(router, key)}
    assert matched == expected


def test_all_table_bindings_together() -> None:
    router = TopicRouter()
    for binding_key, _ in TABLE:
        router.add(binding_key, binding_key, {})
    for key in KEYS:
        expected = {binding_key for binding_key, matches in TABLE if key in matches}
        assert routed(router, key) == expected, key
    for binding_key, _ in TABLE:
        router.remove(binding_key, binding_key, {})
    assert all(not routed(router, key) for key in KEYS)
    assert is_empty(router)


def test_many_hashes_do_not_blow_up() -> None:
    router = TopicRouter()
    router.add("q", ".".join(["#"] * 40) + ".z", {})
    router.add("p", ".".join(["#", "a"] * 20), {})
    key = ".".join(["a"] * 200)
    assert routed(router, key) == {"p"}
    assert routed(router, key + ".z") == {"q"}


def test_literal_wildcards_in_routing_key() -> None:
    router = TopicRouter()
    router.add("star", "*", {})
    router.add("hash", "#", {})
    router.add("lit", "a", {})
    assert routed(router, "*") == {"star", "hash"}
    assert routed(router, "#") == {"star", "hash"}


def test_multiple_destinations_and_dedup() -> None:
    router = TopicRouter()
    router.add("q1", "a.*", {})
    router.add("q1", "a.b", {})
    router.add("q1", "#", {})
    router.add("q2", "a.b", {})
    router.add("q3", "x.#", {})
    out: set = set()
    router.route("a.b", None, out)
    assert out == {"q1", "q2"}
    out = {"other"}
    router.route("a.b", None, out)
    assert out == {"other", "q1", "q2"}


def test_same_key_different_arguments_are_separate_bindings() -> None:
    router = TopicRouter()
    router.add("q", "a.b", {})
    router.add("q", "a.b", {"x": 1})
    router.remove("q", "a.b", {})
    assert routed(router, "a.b") == {"q"}
    router.remove("q", "a.b", {"x": 1})
    assert routed(router, "a.b") == set()
    assert is_empty(router)


def test_remove_prunes_only_unused_nodes() -> None:
    router = TopicRouter()
    router.add("q1", "a.b.c", {})
    router.add("q2", "a", {})
    router.add("q3", "a.#.d", {})
    router.remove("q1", "a.b.c", {})
    assert set(router._root.children) == {"a"}
    assert set(router._root.children["a"].children) == {"#"}
    assert routed(router, "a") == {"q2"}
    assert routed(router, "a.x.d") == {"q3"}
    router.remove("q2", "a", {})
    router.remove("q3", "a.#.d", {})
    assert is_empty(router)


def test_remove_unknown_is_harmless() -> None:
    router = TopicRouter()
    router.add("q", "a.b", {})
    router.remove("q", "a.c", {})
    router.remove("other", "a.b", {})
    router.remove("q", "a.b.c", {})
    assert routed(router, "a.b") == {"q"}


def test_cache_is_invalidated_and_bounded() -> None:
    router = TopicRouter()
    assert routed(router, "a.b") == set()
    router.add("q", "a.*", {})
    assert routed(router, "a.b") == {"q"}
    router.remove("q", "a.*", {})
    assert routed(router, "a.b") == set()
    for i in range(CACHE_SIZE * 2):
        router.route(f"k.{i}", None, set())
    assert len(router._cache) <= CACHE_SIZE


def test_check_arguments_accepts_anything() -> None:
    TopicRouter.check_arguments({"x-match": "bogus", "a": [1, {"b": 2}]})


# --- property test against a naive matcher ------------------------------------------------


def split(key: str) -> list[str]:
    return key.split(".") if key else []


def naive(pattern: list[str], words: list[str]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return naive(rest, words) or (bool(words) and naive(pattern, words[1:]))
    if not words:
        return False
    return (head == "*" or head == words[0]) and naive(rest, words[1:])


def keys(alphabet: list[str], max_size: int) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(alphabet), max_size=max_size).map(".".join)


@settings(max_examples=300, deadline=None)
@given(
    bindings=st.lists(keys(["a", "b", "", "*", "#"], 5), max_size=8),
    routing_keys=st.lists(keys(["a", "b", "", "*", "#"], 6), min_size=1, max_size=8),
    removed=st.sets(st.integers(min_value=0, max_value=7)),
)
def test_matches_naive_matcher(bindings: list[str], routing_keys: list[str],
                               removed: set[int]) -> None:
    router = TopicRouter()
    live = dict(enumerate(bindings))
    for dest, binding_key in live.items():
        router.add(dest, binding_key, {})
    for dest in removed & set(live):
        router.remove(dest, live.pop(dest), {})
    for routing_key in routing_keys:
        expected = {d for d, b in live.items() if naive(split(b), split(routing_key))}
        assert routed(router, routing_key) == expected
    for dest, binding_key in live.items():
        router.remove(dest, binding_key, {})
    assert is_empty(router)
