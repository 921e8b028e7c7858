"""Unit tests for the direct and fanout exchange routers."""

from __future__ import annotations

from amqpbroker.broker.routing import ROUTERS, DirectRouter, FanoutRouter


def routed(router: DirectRouter | FanoutRouter, routing_key: str,
           headers: dict | None = None) -> set:
    out: set = set()
    router.route(routing_key, headers, out)
    return out


def test_registered() -> None:
    assert ROUTERS["direct"] is DirectRouter
    assert ROUTERS["fanout"] is FanoutRouter
    assert set(ROUTERS) == {"direct", "fanout", "topic", "headers"}


def test_direct_exact_match() -> None:
    router = DirectRouter()
    router.add("q1", "a.b", {})
    router.add("q2", "", {})
    router.add("q3", "A.b", {})
    assert routed(router, "a.b") == {"q1"}
    assert routed(router, "") == {"q2"}
    assert routed(router, "A.b") == {"q3"}
    assert routed(router, "a.*") == set()
    assert routed(router, "a.b ") == set()
    assert routed(router, "#") == set()


def test_direct_wildcards_are_literal() -> None:
    router = DirectRouter()
    router.add("q", "#", {})
    router.add("p", "*", {})
    assert routed(router, "#") == {"q"}
    assert routed(router, "*") == {"p"}
    assert routed(router, "a") == set()


def test_direct_multiple_destinations_and_dedup() -> None:
    router = DirectRouter()
    router.add("q1", "k", {})
    router.add("q1", "k", {"x": [1]})
    router.add("q1", "j", {})
    router.add("q2", "k", {})
    assert routed(router, "k") == {"q1", "q2"}
    out = {"other"}
    router.route("k", None, out)
    assert out == {"other", "q1", "q2"}


def test_direct_no_garbage() -> None:
    router = DirectRouter()
    router.add("q1", "k", {})
    router.add("q1", "k", {"x": {"y": 1}})
    router.add("q2", "k", {})
    router.add("q2", "j", {})
    router.remove("q1", "k", {})
    assert routed(router, "k") == {"q1", "q2"}
    router.remove("q1", "k", {"x": {"y": 1}})
    assert routed(router, "k") == {"q2"}
    router.remove("q2", "k", {})
    router.remove("q2", "j", {})
    assert router._keys == {}
    assert routed(router, "k") == set()
    router.remove("q2", "j", {})  # unknown binding: harmless
    assert router._keys == {}


def test_fanout_routes_everything() -> None:
    router = FanoutRouter()
    assert routed(router, "a") == set()
    router.add("q1", "", {})
    router.add("q2", "some.key", {})
    for key in ["", "a", "some.key", "#"]:
        assert routed(router, key) == {"q1", "q2"}
        assert routed(router, key, {"a": 1}) == {"q1", "q2"}


def test_fanout_dedup_and_no_garbage() -> None:
    router = FanoutRouter()
    router.add("q1", "a", {})
    router.add("q1", "b", {})
    router.add("q1", "a", {"x": [1]})
    router.add("q2", "", {})
    assert routed(router, "z") == {"q1", "q2"}
    router.remove("q1", "a", {})
    router.remove("q1", "b", {})
    assert routed(router, "z") == {"q1", "q2"}
    router.remove("q1", "a", {"x": [1]})
    assert routed(router, "z") == {"q2"}
    router.remove("q2", "", {})
    assert router._dests == {}
    router.remove("q2", "", {})  # unknown binding: harmless
    assert router._dests == {}


def test_check_arguments_accepts_anything() -> None:
    for router in (DirectRouter, FanoutRouter):
        router.check_arguments({})
        router.check_arguments({"x-match": "bogus", "a": [{"b": None}]})


def test_destinations_are_opaque_objects() -> None:
    class Queue:
        pass

    q1, q2 = Queue(), Queue()
    for router in (DirectRouter(), FanoutRouter()):
        router.add(q1, "k", {})
        router.add(q2, "k", {})
        assert routed(router, "k") == {q1, q2}
