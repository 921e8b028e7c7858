"""Unit tests for amqpbroker.broker.deadletter against the reference sheet, §4.1."""

from __future__ import annotations

import datetime
import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pamqp import header as pamqp_header
from pamqp.commands import Basic

from amqpbroker import values
from amqpbroker.broker import deadletter, properties
from amqpbroker.broker.message import Message
from amqpbroker.protocol.amqp import fastcodec
from amqpbroker.values import EncodedTable

T0 = 1_700_000_000.75
NEW_ORDER = ["count", "reason", "queue", "time", "exchange", "routing-keys"]
SORTED_ORDER = ["count", "exchange", "queue", "reason", "routing-keys", "time"]


def published(headers: dict[str, Any] | None = None, exchange: str = "ex",
              routing_key: str = "rk", **props: Any) -> Message:
    return properties.build(exchange, routing_key, Basic.Properties(headers=headers, **props),
                            b"payload")


def utc(seconds: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(int(seconds), tz=datetime.UTC)


def wire_headers(message: Message) -> dict[str, Any]:
    """The headers as pamqp decodes message.header, and a check they match the view."""
    content = pamqp_header.ContentHeader()
    content.unmarshal(message.header)
    assert content.properties.headers == message.headers
    return content.properties.headers


def raw_items(message: Message) -> dict[str, bytes]:
    return dict(values.table_items(properties.split_header(message.header)["headers"]))


def raw_entries(message: Message) -> list[list[tuple[str, bytes]]]:
    """Each x-death entry's fields, encoded, in wire order."""
    entries = values.array_items(raw_items(message)["x-death"], 1)
    assert all(entry[:1] == b"F" for entry in entries)
    return [values.table_items(entry, 1) for entry in entries]


# --------------------------------------------------------------------------- first death


def keys(message: Message) -> list[str]:
    """The keys a message routes by: its routing key, then CC and BCC."""
    return [message.routing_key, *message.sender_routes()]


def test_first_death_entry_layout_and_types() -> None:
    message = published({"CC": ["c1", "c2"], "BCC": ["b1"]}, expiration="5000")
    dead = deadletter.dead_letter(message, "q1", "expired", None, T0)
    headers = wire_headers(dead)
    [entry] = headers["x-death"]
    assert list(entry) == [*NEW_ORDER, "original-expiration"]
    assert entry == {
        "count": 1,
        "reason": "expired",
        "queue": "q1",
        "time": utc(T0),
        "exchange": "ex",
        "routing-keys": ["rk", "c1", "c2"],  # CC values, not BCC ones
        "original-expiration": "5000",
    }
    [fields] = raw_entries(dead)
    tags = {key: raw[:1] for key, raw in fields}
    assert tags == {"count": b"l", "reason": b"S", "queue": b"S", "time": b"T",
                    "exchange": b"S", "routing-keys": b"A", "original-expiration": b"S"}
    assert dict(fields)["count"] == b"l" + struct.pack(">q", 1)
    assert dict(fields)["time"] == b"T" + struct.pack(">Q", int(T0))
    keys = values.array_items(dict(fields)["routing-keys"], 1)
    assert [raw[:1] for raw in keys] == [b"S", b"S", b"S"]


def test_first_death_without_expiration_has_no_original_expiration() -> None:
    dead = deadletter.dead_letter(published(), "q1", "rejected", None, T0)
    [entry] = wire_headers(dead)["x-death"]
    assert list(entry) == NEW_ORDER
    assert entry["routing-keys"] == ["rk"]


def test_expiration_is_removed_whatever_the_reason() -> None:
    for reason in sorted(deadletter.REASONS):
        dead = deadletter.dead_letter(published(expiration="100"), "q", reason, None, T0)
        assert dead.expiration is None
        assert "expiration" not in properties.split_header(dead.header)
        assert properties.decode(dead).expiration is None
        assert dead.headers["x-death"][0]["original-expiration"] == "100"


def test_first_and_last_death_headers() -> None:
    dead = deadletter.dead_letter(published(), "q1", "maxlen", None, T0)
    headers = wire_headers(dead)
    for prefix in ("x-first-death-", "x-last-death-"):
        assert headers[prefix + "reason"] == "maxlen"
        assert headers[prefix + "queue"] == "q1"
        assert headers[prefix + "exchange"] == "ex"
    items = raw_items(dead)
    keys = [p + k for p in ("x-first-death-", "x-last-death-") for k in ("reason", "queue",
                                                                          "exchange")]
    assert [items[key][:1] for key in keys] == [b"S"] * 6


def test_headers_table_is_sorted_by_key() -> None:
    dead = deadletter.dead_letter(published({"zz": 1, "CC": ["c"], "aa": 2}), "q", "expired",
                                  None, T0)
    keys = list(raw_items(dead))
    assert keys == sorted(keys)
    assert keys == ["CC", "aa", "x-death", "x-first-death-exchange", "x-first-death-queue",
                    "x-first-death-reason", "x-last-death-exchange", "x-last-death-queue",
                    "x-last-death-reason", "zz"]


# --------------------------------------------------------------------------- later deaths


def test_reject_cycles_through_one_queue_make_one_entry() -> None:
    message = published(expiration="60000")
    for n in range(3):
        message = deadletter.dead_letter(message, "q1", "rejected", None, T0 + 10 * n)
    [entry] = wire_headers(message)["x-death"]
    assert list(entry) == [*SORTED_ORDER[:2], "original-expiration", *SORTED_ORDER[2:]]
    assert entry["count"] == 3
    assert entry["original-expiration"] == "60000"
    # RabbitMQ keeps the time of the entry's first death (3.10 and 3.13 alike).
    assert entry["time"] == utc(T0)
    [fields] = raw_entries(message)
    assert dict(fields)["count"] == b"l" + struct.pack(">q", 3)


def test_updated_entry_is_alphabetical() -> None:
    message = published()
    for _ in range(2):
        message = deadletter.dead_letter(message, "q1", "rejected", None, T0)
    [entry] = wire_headers(message)["x-death"]
    assert list(entry) == SORTED_ORDER
    assert entry["count"] == 2


def test_most_recent_first_and_newest_entry_alphabetical() -> None:
    message = deadletter.dead_letter(published(), "q1", "rejected", None, T0)
    message = deadletter.dead_letter(message, "q2", "expired", None, T0 + 1, dlx="dlx")
    first, second = wire_headers(message)["x-death"]
    assert (first["queue"], first["reason"]) == ("q2", "expired")
    assert (second["queue"], second["reason"]) == ("q1", "rejected")
    assert list(first) == SORTED_ORDER
    assert list(second) == NEW_ORDER  # untouched: bytes as they were
    assert first["count"] == second["count"] == 1
    assert first["time"] == utc(T0 + 1)
    assert second["time"] == utc(T0)


def test_updated_entry_moves_to_the_front() -> None:
    message = published()
    steps = [("q1", "rejected"), ("q2", "rejected"), ("q3", "expired"), ("q1", "rejected")]
    for queue, reason in steps:
        message = deadletter.dead_letter(message, queue, reason, None, T0)
    entries = wire_headers(message)["x-death"]
    assert [(e["queue"], e["reason"], e["count"]) for e in entries] == [
        ("q1", "rejected", 2), ("q3", "expired", 1), ("q2", "rejected", 1)]


def test_same_queue_other_reason_is_another_entry() -> None:
    message = deadletter.dead_letter(published(), "q1", "rejected", None, T0)
    message = deadletter.dead_letter(message, "q1", "expired", None, T0)
    entries = wire_headers(message)["x-death"]
    assert [(e["queue"], e["reason"]) for e in entries] == [("q1", "expired"),
                                                            ("q1", "rejected")]


def test_untouched_entries_keep_their_bytes() -> None:
    once = deadletter.dead_letter(published(), "q1", "rejected", None, T0)
    twice = deadletter.dead_letter(once, "q2", "expired", None, T0 + 5)
    assert raw_entries(twice)[1] == raw_entries(once)[0]


def test_first_death_headers_are_set_once_and_last_death_headers_every_time() -> None:
    message = deadletter.dead_letter(published(exchange="ex0"), "q1", "rejected", None, T0,
                                     dlx="dlx1")
    message = deadletter.dead_letter(message, "q2", "expired", None, T0, dlx="dlx2")
    headers = wire_headers(message)
    assert [headers["x-first-death-" + k] for k in ("reason", "queue", "exchange")] == [
        "rejected", "q1", "ex0"]
    assert [headers["x-last-death-" + k] for k in ("reason", "queue", "exchange")] == [
        "expired", "q2", "dlx1"]
    # The x-death exchange is where the message was published before it died.
    assert [e["exchange"] for e in headers["x-death"]] == ["dlx1", "ex0"]
    assert message.exchange == "dlx2"


def test_exchange_defaults_to_the_message_exchange() -> None:
    dead = deadletter.dead_letter(published(exchange="orig"), "q", "rejected", None, T0)
    assert dead.exchange == "orig"
    assert dead.headers["x-death"][0]["exchange"] == "orig"


def test_default_exchange_is_recorded_as_empty_string() -> None:
    dead = deadletter.dead_letter(published(exchange=""), "q", "rejected", None, T0)
    assert dead.headers["x-death"][0]["exchange"] == ""
    assert dead.headers["x-first-death-exchange"] == ""


# --------------------------------------------------------------------------- routing


def test_without_dlx_routing_key_cc_and_bcc_are_kept() -> None:
    message = published({"CC": ["c1"], "BCC": ["b1"]})
    dead = deadletter.dead_letter(message, "q", "rejected", None, T0)
    assert dead.routing_key == "rk"
    assert dead.headers["CC"] == ["c1"] and dead.headers["BCC"] == ["b1"]
    assert keys(dead) == ["rk", "c1", "b1"]


@pytest.mark.parametrize("dlx_key", ["dl-key", ""])
def test_dlx_routing_key_replaces_the_key_and_removes_cc_and_bcc(dlx_key: str) -> None:
    message = published({"CC": ["c1"], "BCC": ["b1"], "keep": "me"})
    dead = deadletter.dead_letter(message, "q", "rejected", dlx_key, T0)
    headers = wire_headers(dead)
    assert dead.routing_key == dlx_key
    assert "CC" not in headers and "BCC" not in headers
    assert headers["keep"] == "me"
    # The entry records the keys the message had when it died.
    assert headers["x-death"][0]["routing-keys"] == ["rk", "c1"]
    assert keys(dead) == [dlx_key]


def test_routing_keys_of_a_plain_message() -> None:
    assert keys(published()) == ["rk"]
    assert keys(published({"CC": ["a", 1], "BCC": "bad"})) == ["rk", "a"]


# --------------------------------------------------------------------------- kept as is


def test_other_properties_and_user_headers_are_kept() -> None:
    stamp = datetime.datetime(2024, 1, 2, tzinfo=datetime.UTC)
    message = published({"user": "value", "n": 300, "nested": {"l": [1, "two"]}},
                        content_type="application/json", delivery_mode=2, priority=7,
                        correlation_id="c", reply_to="r", message_id="m", timestamp=stamp,
                        message_type="t", user_id="guest", app_id="a", expiration="9")
    dead = deadletter.dead_letter(message, "q", "expired", None, T0)
    before, after = properties.decode(message), properties.decode(dead)
    for name in properties.NAMES:
        if name not in ("headers", "expiration"):
            assert getattr(after, name) == getattr(before, name), name
    assert (dead.persistent, dead.priority, dead.user_id) == (True, 7, "guest")
    assert dead.body is message.body
    old_items, new_items = raw_items(message), raw_items(dead)
    for key in ("user", "n", "nested"):
        assert new_items[key] == old_items[key]


def test_user_header_types_survive_byte_for_byte() -> None:
    # Types pamqp would re-encode differently: a signed 32-bit 5, a double, bytes as a
    # longstr, an unsigned byte, a nested table whose keys are not sorted.
    raw = {
        "i32": b"I" + struct.pack(">i", 5),
        "dbl": b"d" + struct.pack(">d", 0.1),
        "str": b"S\x00\x00\x00\x02\xff\xfe",
        "ub": b"B\x07",
        "tbl": b"F" + values.encode_table({"z": 1, "a": 2}),
    }
    data = b"".join(bytes((len(k),)) + k.encode() + v for k, v in raw.items())
    table = struct.pack(">I", len(data)) + data
    view = properties.decode_headers(table, (0, len(table)))
    message = published(EncodedTable(table, view))
    dead = deadletter.dead_letter(message, "q", "rejected", None, T0)
    items = raw_items(dead)
    for key, value in raw.items():
        assert items[key] == value, key
    assert dead.headers["dbl"] == 0.1


def test_a_message_from_the_publish_path() -> None:
    props = Basic.Properties(headers={"CC": ["c"], "h": 1}, expiration="1000", delivery_mode=2)
    payload = pamqp_header.ContentHeader(0, 4, props).marshal()
    info = fastcodec.scan_header(payload)
    message = Message("ex", "rk", payload, b"body", info.delivery_mode, info.priority,
                      info.expiration, info.headers_span, info.user_id,
                      fastcodec.decode_headers)
    dead = deadletter.dead_letter(message, "q", "expired", "dl", T0, dlx="dlx")
    headers = wire_headers(dead)
    assert headers["h"] == 1 and "CC" not in headers
    assert headers["x-death"][0]["original-expiration"] == "1000"
    assert dead.persistent
    rescanned = fastcodec.scan_header(dead.header)
    assert rescanned.headers_span == dead.headers_span
    assert rescanned.expiration is None
    assert fastcodec.decode_headers(dead.header, dead.headers_span) == dead.headers


def test_wire_level_types_with_pamqp() -> None:
    message = deadletter.dead_letter(published(), "q1", "rejected", None, T0)
    message = deadletter.dead_letter(message, "q1", "rejected", None, T0)
    headers = wire_headers(message)
    assert isinstance(headers["x-death"], list)
    [entry] = headers["x-death"]
    assert isinstance(entry["time"], datetime.datetime)
    assert entry["time"].tzinfo is not None
    assert isinstance(entry["routing-keys"], list)
    assert isinstance(entry["count"], int)


def test_x_death_of_another_type_starts_a_new_history() -> None:
    dead = deadletter.dead_letter(published({"x-death": "junk"}), "q", "rejected", None, T0)
    [entry] = wire_headers(dead)["x-death"]
    assert list(entry) == NEW_ORDER
    assert dead.headers["x-first-death-queue"] == "q"


def test_unknown_reason_is_refused() -> None:
    with pytest.raises(ValueError):
        deadletter.dead_letter(published(), "q", "bored", None, T0)


header_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2 ** 63), 2 ** 63 - 1) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(min_size=1, max_size=5), inner, max_size=3),
    max_leaves=8,
)


@given(st.dictionaries(st.text(min_size=1, max_size=10).filter(
    lambda k: not k.startswith("x-") and k not in ("CC", "BCC")), header_values, max_size=6))
def test_user_headers_always_survive(headers: dict[str, Any]) -> None:
    message = published(headers)
    dead = deadletter.dead_letter(message, "q", "expired", "k", T0)
    after = wire_headers(dead)
    assert {k: v for k, v in after.items() if not k.startswith("x-")} == headers
    old_items = raw_items(message)
    assert all(raw_items(dead)[k] == v for k, v in old_items.items())


# --------------------------------------------------------------------------- cycles


def test_rejected_is_never_a_cycle() -> None:
    message = deadletter.dead_letter(published(), "q1", "rejected", None, T0)
    assert not deadletter.is_cycle(message, "q1", "rejected")


def test_no_history_or_queue_not_in_history_is_no_cycle() -> None:
    assert not deadletter.is_cycle(published(), "q1", "expired")
    message = deadletter.dead_letter(published(), "q1", "expired", None, T0)
    assert not deadletter.is_cycle(message, "q2", "expired")


def test_automatic_loop_is_a_cycle() -> None:
    message = deadletter.dead_letter(published(), "q1", "expired", None, T0)
    assert deadletter.is_cycle(message, "q1", "expired")  # a queue dead-lettering to itself
    message = deadletter.dead_letter(published(), "q1", "expired", None, T0)
    message = deadletter.dead_letter(message, "q2", "maxlen", None, T0)
    assert deadletter.is_cycle(message, "q1", "maxlen")


def test_a_rejection_inside_the_loop_breaks_it() -> None:
    message = deadletter.dead_letter(published(), "q1", "expired", None, T0)
    message = deadletter.dead_letter(message, "q2", "rejected", None, T0)
    message = deadletter.dead_letter(message, "q3", "expired", None, T0)
    assert not deadletter.is_cycle(message, "q1", "expired")


def test_a_rejection_before_the_loop_does_not_break_it() -> None:
    message = deadletter.dead_letter(published(), "q0", "rejected", None, T0)
    message = deadletter.dead_letter(message, "q1", "expired", None, T0)
    message = deadletter.dead_letter(message, "q2", "expired", None, T0)
    assert deadletter.is_cycle(message, "q1", "expired")
    assert not deadletter.is_cycle(message, "q0", "expired")
