"""Unit tests for the headers exchange router: x-match modes, x- keys, value equality."""

from __future__ import annotations

import pytest

from amqpbroker import errors
from amqpbroker.broker.routing import ROUTERS, HeadersRouter

NO_HEADERS: list[dict | None] = [None, {}]


def matches(arguments: dict, headers: dict | None) -> bool:
    HeadersRouter.check_arguments(arguments)
    router = HeadersRouter()
    router.add("q", "", arguments)
    out: set = set()
    router.route("ignored", headers, out)
    return out == {"q"}


def test_registered() -> None:
    assert ROUTERS["headers"] is HeadersRouter


@pytest.mark.parametrize("arguments", [{}, {"x-match": "all"}, {"x-match": "all-with-x"}])
@pytest.mark.parametrize("headers", [None, {}, {"a": 1}, {"x-foo": "bar"}])
def test_nothing_to_compare_under_all_matches_everything(arguments: dict,
                                                         headers: dict | None) -> None:
    assert matches(arguments, headers)


@pytest.mark.parametrize("mode", ["any", "any-with-x"])
@pytest.mark.parametrize("headers", [None, {}, {"a": 1}, {"x-match": "any"}])
def test_nothing_to_compare_under_any_matches_nothing(mode: str, headers: dict | None) -> None:
    assert not matches({"x-match": mode}, headers)


def test_all_default() -> None:
    args = {"a": 1, "b": "x"}
    assert matches(args, {"a": 1, "b": "x"})
    assert matches(args, {"a": 1, "b": "x", "c": 3})  # extra headers are fine
    assert not matches(args, {"a": 1})
    assert not matches(args, {"a": 1, "b": "y"})
    assert not matches(args, None)
    assert matches({"x-match": "all", **args}, {"b": "x", "a": 1})


def test_any() -> None:
    args = {"x-match": "any", "a": 1, "b": "x"}
    assert matches(args, {"a": 1})
    assert matches(args, {"b": "x", "z": 0})
    assert matches(args, {"a": 2, "b": "x"})
    assert not matches(args, {"a": 2, "b": "y"})
    assert not matches(args, {"c": 1})
    for headers in NO_HEADERS:
        assert not matches(args, headers)


@pytest.mark.parametrize("headers", [None, {}, {"a": 1}, {"x-foo": 2}])
def test_all_ignores_x_keys(headers: dict | None) -> None:
    assert matches({"x-match": "all", "x-foo": 1}, headers)
    assert matches({"x-foo": 1}, headers)


@pytest.mark.parametrize("headers", [None, {}, {"a": 1}, {"x-foo": 1}])
def test_any_with_only_x_keys_matches_nothing(headers: dict | None) -> None:
    assert not matches({"x-match": "any", "x-foo": 1}, headers)


@pytest.mark.parametrize("headers", [None, {}, {"a": 1}, {"a": 2}, {"x-foo": 1},
                                     {"x-foo": 1, "a": 2}, {"x-foo": 1, "a": 1}])
def test_any_ignores_x_keys(headers: dict | None) -> None:
    expected = matches({"x-match": "any", "a": 1}, headers)
    assert matches({"x-match": "any", "x-foo": 1, "a": 1}, headers) == expected
    assert expected == (headers is not None and headers.get("a") == 1)


def test_all_with_x_counts_x_keys() -> None:
    args = {"x-match": "all-with-x", "x-foo": 1}
    assert matches(args, {"x-foo": 1})
    assert matches(args, {"x-foo": 1, "b": 2})
    assert not matches(args, {"x-foo": 2})
    assert not matches(args, {"a": 1})
    for headers in NO_HEADERS:
        assert not matches(args, headers)
    both = {"x-match": "all-with-x", "x-foo": 1, "a": 1}
    assert matches(both, {"x-foo": 1, "a": 1})
    assert not matches(both, {"a": 1})


def test_any_with_x_counts_x_keys() -> None:
    args = {"x-match": "any-with-x", "x-foo": 1, "a": 1}
    assert matches(args, {"x-foo": 1})
    assert matches(args, {"a": 1})
    assert not matches(args, {"x-foo": 2, "a": 2})


@pytest.mark.parametrize("mode", ["all-with-x", "any-with-x"])
def test_x_match_key_itself_is_never_compared(mode: str) -> None:
    # all-with-x does not require the header; any-with-x does not match on it.
    assert matches({"x-match": mode, "a": 1}, {"a": 1})
    assert matches({"x-match": mode, "a": 1}, {"a": 1, "x-match": "other"})
    assert not matches({"x-match": "any-with-x"}, {"x-match": "any-with-x"})
    assert matches({"x-match": "all-with-x"}, {"x-match": "other"})


@pytest.mark.parametrize("mode", ["all", "any"])
def test_void_binding_value_matches_presence(mode: str) -> None:
    args = {"x-match": mode, "a": None}
    for value in [None, 0, 1, "", "x", b"x", True, False, 1.5, [1], {"b": 1}]:
        assert matches(args, {"a": value}), value
    assert not matches(args, {"b": 1})
    for headers in NO_HEADERS:
        assert not matches(args, headers)


def test_void_header_value_only_matches_void_binding() -> None:
    assert not matches({"a": 1}, {"a": None})
    assert not matches({"a": ""}, {"a": None})


@pytest.mark.parametrize(
    ("binding", "header", "expected"),
    [
        (1, 1, True),
        (1, 2, False),
        (2**40, 2**40, True),
        (-5, -5, True),
        (1, "1", False),
        ("1", 1, False),
        (True, True, True),
        (False, False, True),
        (True, False, False),
        (True, 1, False),
        (1, True, False),
        (False, 0, False),
        (0, False, False),
        (1, 1.0, False),
        (1.0, 1, False),
        (1.5, 1.5, True),
        ("abc", "abc", True),
        ("abc", "ABC", False),
        ("abc", b"abc", True),
        (b"abc", "abc", True),
        (b"abc", b"abc", True),
        ("é", "é".encode(), True),
        ("abc", b"abd", False),
        ([1, "a"], [1, "a"], True),
        ([1], [True], False),
        ([1], [1, 2], False),
        ({"k": 1}, {"k": 1}, True),
        ({"k": 1}, {"k": True}, False),
        ({"k": 1}, {"k": 1, "j": 2}, False),
        ({"k": None}, {"k": None}, True),
        ({"k": None}, {"k": 0}, False),
    ],
)
def test_value_equality(binding: object, header: object, expected: bool) -> None:
    assert matches({"h": binding}, {"h": header}) is expected
    assert matches({"x-match": "any", "h": binding}, {"h": header}) is expected


@pytest.mark.parametrize("value", ["bogus", "ALL", "", "all ", b"bogus"])
def test_bad_x_match_raises(value: object) -> None:
    with pytest.raises(errors.ChannelError) as info:
        HeadersRouter.check_arguments({"x-match": value, "a": 1})
    assert info.value.reply_code == 406
    shown = value.decode() if isinstance(value, bytes) else value
    assert info.value.reply_text == (
        f'PRECONDITION_FAILED - Invalid x-match field value <<"{shown}">>; '
        "expected all, any, all-with-x, or any-with-x"
    )


def test_bad_x_match_exact_text() -> None:
    with pytest.raises(errors.ChannelError) as info:
        HeadersRouter.check_arguments({"x-match": "bogus"})
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        'PRECONDITION_FAILED - Invalid x-match field value <<"bogus">>; '
        "expected all, any, all-with-x, or any-with-x"
    )


def test_non_string_x_match_raises() -> None:
    with pytest.raises(errors.ChannelError) as info:
        HeadersRouter.check_arguments({"x-match": 1})
    assert info.value.reply_code == 406
    assert '<<"1">>' in info.value.reply_text


@pytest.mark.parametrize("value", ["all", "any", "all-with-x", "any-with-x", b"any"])
def test_good_x_match_accepted(value: object) -> None:
    HeadersRouter.check_arguments({"x-match": value, "a": 1})


def test_bytes_x_match_value_works() -> None:
    assert matches({"x-match": b"any", "a": 1, "b": 2}, {"b": 2})


def test_multiple_destinations_and_dedup() -> None:
    router = HeadersRouter()
    router.add("q1", "", {"a": 1})
    router.add("q1", "", {"b": 2})
    router.add("q1", "other-key", {"a": 1})
    router.add("q2", "", {"x-match": "any", "a": 1, "c": 3})
    router.add("q3", "", {"a": 2})
    out: set = set()
    router.route("", {"a": 1, "b": 2}, out)
    assert out == {"q1", "q2"}
    out = {"other"}
    router.route("", {"c": 3}, out)
    assert out == {"other", "q2"}


def test_unhashable_arguments_and_no_garbage() -> None:
    router = HeadersRouter()
    bindings = [
        ("q1", "", {"a": [1, 2], "b": {"c": [3]}}),
        ("q1", "", {"a": [1, 2]}),
        ("q1", "k", {"a": [1, 2]}),
        ("q1", "", {"a": True}),
        ("q1", "", {"a": 1}),
        ("q2", "", {"x-match": "any", "d": {"e": None}}),
        ("q2", "", {}),
    ]
    for dest, key, args in bindings:
        router.add(dest, key, args)
    assert len(router._bindings) == len(bindings)
    out: set = set()
    router.route("", {"a": [1, 2], "b": {"c": [3]}}, out)
    assert out == {"q1", "q2"}
    router.remove("q1", "", {"a": 1})  # leaves the {"a": True} binding
    out = set()
    router.route("", {"a": True}, out)
    assert out == {"q1", "q2"}
    out = set()
    router.route("", {"a": 1}, out)
    assert out == {"q2"}
    for dest, key, args in bindings:
        router.remove(dest, key, args)
    assert router._bindings == {}
    out = set()
    router.route("", {"a": [1, 2]}, out)
    assert out == set()


def test_remove_unknown_is_harmless() -> None:
    router = HeadersRouter()
    router.add("q", "", {"a": 1})
    router.remove("q", "", {"a": 2})
    router.remove("p", "", {"a": 1})
    out: set = set()
    router.route("", {"a": 1}, out)
    assert out == {"q"}
