"""Unit tests for amqpbroker.broker.properties: decode, build, replace and the table codec."""

from __future__ import annotations

import datetime
import struct
from typing import Any

import pytest
from pamqp import header as pamqp_header
from pamqp.commands import Basic

from amqpbroker import values
from amqpbroker.broker import properties
from amqpbroker.broker.message import Message
from amqpbroker.values import EncodedTable, Long

STAMP = datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.UTC)


def full_properties(**overrides: Any) -> Basic.Properties:
    fields: dict[str, Any] = {
        "content_type": "text/plain",
        "content_encoding": "utf-8",
        "headers": {"a": "b", "n": 7},
        "delivery_mode": 2,
        "priority": 5,
        "correlation_id": "corr",
        "reply_to": "replies",
        "expiration": "60000",
        "message_id": "id-1",
        "timestamp": STAMP,
        "message_type": "kind",
        "user_id": "guest",
        "app_id": "app",
    }
    fields.update(overrides)
    return Basic.Properties(**fields)


def pamqp_unmarshal(payload: bytes) -> Basic.Properties:
    content = pamqp_header.ContentHeader()
    content.unmarshal(payload)
    return content.properties


def raising_decoder(header: bytes, span: tuple[int, int]) -> dict[str, Any]:
    raise AssertionError("the headers must not be decoded")


def raw_message(header: bytes, body: bytes = b"", decoder: Any = raising_decoder,
                span: tuple[int, int] | None = None, delivery_mode: int = 0) -> Message:
    return Message("ex", "rk", header, body, delivery_mode, -1, None, span, None, decoder)


# --------------------------------------------------------------------------- build


def test_build_matches_pamqp_marshal_without_headers() -> None:
    props = full_properties(headers=None)
    message = properties.build("ex", "rk", props, b"body")
    assert message.header == pamqp_header.ContentHeader(0, 4, props).marshal()


def test_build_matches_pamqp_marshal_for_sorted_headers_of_pamqp_types() -> None:
    props = full_properties(headers={"a": "text", "b": 1, "c": [1, "x"], "d": {"k": True}})
    message = properties.build("ex", "rk", props, b"body")
    assert message.header == pamqp_header.ContentHeader(0, 4, props).marshal()


def test_build_fills_the_scanned_fields() -> None:
    body = b"hello world"
    message = properties.build("ex", "rk", full_properties(), body)
    assert (message.exchange, message.routing_key, message.body) == ("ex", "rk", body)
    assert message.persistent is True
    assert message.priority == 5
    assert message.expiration == "60000"
    assert message.user_id == "guest"
    assert struct.unpack_from(">HHQ", message.header) == (60, 0, len(body))


def test_build_absent_properties() -> None:
    message = properties.build("", "q", Basic.Properties(), b"")
    assert message.persistent is False
    assert message.priority == -1
    assert message.expiration is None
    assert message.user_id is None
    assert message.headers is None
    assert message.headers_span is None
    assert message.sender_routes() == []
    assert message.header == pamqp_header.ContentHeader(0, 0, None).marshal()


def test_build_presets_the_headers_and_records_their_span() -> None:
    headers = {"CC": ["c1", "c2"], "BCC": ["b1"], "x": 1}
    message = properties.build("ex", "rk", Basic.Properties(headers=headers), b"")
    assert message._headers is headers
    assert message.headers is headers
    assert message.sender_routes() == ["c1", "c2", "b1"]
    assert message.headers_span is not None
    assert properties.decode_headers(message.header, message.headers_span) == headers
    # The decoder is a real one, should the view ever be dropped.
    message._headers = None
    assert message.headers == headers


def test_build_empty_headers_table_is_present() -> None:
    message = properties.build("ex", "rk", Basic.Properties(headers={}), b"")
    assert message.headers == {}
    assert pamqp_unmarshal(message.header).headers == {}


def test_build_leaves_out_empty_strings_like_pamqp() -> None:
    message = properties.build("ex", "rk", Basic.Properties(content_type="", reply_to="r"), b"")
    assert set(properties.split_header(message.header)) == {"reply_to"}


def test_build_passes_delivery_mode_on_without_validating() -> None:
    props = Basic.Properties()
    props.delivery_mode = 3
    message = properties.build("ex", "rk", props, b"")
    assert message.persistent is False
    assert properties.split_header(message.header)["delivery_mode"] == b"\x03"


def test_build_keeps_header_key_order_and_forced_types() -> None:
    headers = {"z": Long(1), "a": 1.5, "m": b"\x00\xff", "b": 1}
    message = properties.build("ex", "rk", Basic.Properties(headers=headers), b"")
    items = values.table_items(properties.split_header(message.header)["headers"])
    assert [key for key, _raw in items] == ["z", "a", "m", "b"]
    assert [raw[:1] for _key, raw in items] == [b"l", b"d", b"x", b"b"]
    assert pamqp_unmarshal(message.header).headers == {
        "z": 1, "a": 1.5, "m": bytearray(b"\x00\xff"), "b": 1}


def test_build_rejects_bad_values() -> None:
    with pytest.raises(ValueError):
        properties.build("e", "k", Basic.Properties(message_id="x" * 256), b"")
    with pytest.raises(TypeError):
        properties.build("e", "k", Basic.Properties(headers={"a": object()}), b"")
    props = Basic.Properties()
    props.priority = 256
    with pytest.raises(ValueError):
        properties.build("e", "k", props, b"")


# --------------------------------------------------------------------------- decode


def test_decode_round_trips_every_property() -> None:
    props = full_properties()
    decoded = properties.decode(properties.build("ex", "rk", props, b"x"))
    for name in properties.NAMES:
        assert getattr(decoded, name) == getattr(props, name), name
    assert decoded.timestamp == STAMP
    assert decoded.timestamp.tzinfo is not None


def test_decode_of_pamqp_marshalled_header() -> None:
    props = full_properties()
    payload = pamqp_header.ContentHeader(0, 1, props).marshal()
    start = 14 + 1 + len("text/plain") + 1 + len("utf-8")  # after the two strings
    span = (start, start + 4 + struct.unpack_from(">I", payload, start)[0])
    message = raw_message(payload, b"x", properties.decode_headers, span)
    decoded = properties.decode(message)
    expected = pamqp_unmarshal(payload)
    for name in properties.NAMES:
        assert getattr(decoded, name) == getattr(expected, name), name


def test_decode_absent_properties() -> None:
    decoded = properties.decode(properties.build("", "q", Basic.Properties(), b""))
    assert all(getattr(decoded, name) is None for name in properties.NAMES if name != "cluster_id")


def test_decode_returns_a_copy_of_the_headers() -> None:
    message = properties.build("ex", "rk", Basic.Properties(headers={"l": [1]}), b"")
    decoded = properties.decode(message)
    decoded.headers["l"].append(2)
    assert message.headers == {"l": [1]}


def test_decode_bad_headers_raise_value_error() -> None:
    message = properties.build("ex", "rk", Basic.Properties(headers={"a": 1}), b"")
    message._headers = None
    message.decoder = lambda header, span: (_ for _ in ()).throw(ValueError("bad"))
    with pytest.raises(ValueError):
        properties.decode(message)


# --------------------------------------------------------------------------- replace


def test_replace_changes_only_what_is_asked() -> None:
    message = properties.build("ex", "rk", full_properties(), b"body")
    before = properties.split_header(message.header)
    new = properties.replace(message, reply_to="elsewhere", expiration=None)
    after = properties.split_header(new.header)
    assert new.body is message.body
    assert (new.exchange, new.routing_key) == ("ex", "rk")
    assert "expiration" not in after and new.expiration is None
    assert after["reply_to"] == b"\x09elsewhere"
    for name in set(before) - {"reply_to", "expiration"}:
        assert after[name] == before[name], name
    decoded = properties.decode(new)
    assert decoded.reply_to == "elsewhere"
    assert decoded.correlation_id == "corr"
    assert struct.unpack_from(">Q", new.header, 4)[0] == 4


def test_replace_recomputes_the_scanned_fields() -> None:
    message = properties.build("ex", "rk", full_properties(), b"")
    new = properties.replace(message, exchange="x2", routing_key="k2", delivery_mode=1,
                             priority=None, user_id="other", expiration="10")
    assert (new.exchange, new.routing_key) == ("x2", "k2")
    assert new.persistent is False
    assert new.priority == -1
    assert new.user_id == "other"
    assert new.expiration == "10"


def test_replace_headers() -> None:
    message = properties.build("ex", "rk", full_properties(), b"")
    headers = {"CC": ["c"], "n": 2}
    new = properties.replace(message, headers=headers)
    assert new._headers is headers
    assert new.sender_routes() == ["c"]
    assert pamqp_unmarshal(new.header).headers == headers
    assert properties.replace(message, headers=None).headers is None


def test_replace_with_an_encoded_table_uses_it_as_is() -> None:
    data = values.encode_table({"k": Long(3)})
    view = {"k": 3}
    new = properties.replace(properties.build("ex", "rk", Basic.Properties(), b""),
                             headers=EncodedTable(data, view))
    assert new.headers is view
    assert properties.split_header(new.header)["headers"] == data


def test_replace_keeps_lazy_headers_and_their_decoder() -> None:
    calls: list[tuple[int, int]] = []

    def decoder(header: bytes, span: tuple[int, int]) -> dict[str, Any]:
        calls.append(span)
        return properties.decode_headers(header, span)

    built = properties.build("ex", "rk", full_properties(), b"")
    message = raw_message(built.header, decoder=decoder, span=built.headers_span)
    new = properties.replace(message, content_type=None)  # the headers move 11 bytes up
    assert calls == []
    assert new.headers == {"a": "b", "n": 7}
    assert calls == [new.headers_span]
    assert new.headers_span == (built.headers_span[0] - 11, built.headers_span[1] - 11)


def test_replace_keeps_bytes_pamqp_would_refuse() -> None:
    # delivery_mode 0, a cluster_id and a reply_to that is not UTF-8: pamqp's marshal
    # would raise on the first two.
    flags = 0x1000 | 0x0200 | 0x0004
    payload = (struct.pack(">HHQH", 60, 0, 0, flags) + b"\x00" + b"\x02\xff\xfe"
               + b"\x07cluster")
    message = raw_message(payload)
    new = properties.replace(message, app_id="app")
    values = properties.split_header(new.header)
    assert values["delivery_mode"] == b"\x00"
    assert values["reply_to"] == b"\x02\xff\xfe"
    assert values["cluster_id"] == b"\x07cluster"
    assert values["app_id"] == b"\x03app"


def test_replace_rejects_unknown_properties() -> None:
    message = properties.build("ex", "rk", Basic.Properties(), b"")
    with pytest.raises(TypeError):
        properties.replace(message, type="x")


# --------------------------------------------------------------------------- codec


def test_table_items_and_array_items_split_without_decoding() -> None:
    data = values.encode_table({"s": "v", "t": {"n": 1}, "a": [1, "x"], "v": None})
    items = values.table_items(data)
    assert [key for key, _raw in items] == ["s", "t", "a", "v"]
    assert [values.decode_value(raw) for _key, raw in items] == [
        "v", {"n": 1}, [1, "x"], None]
    array = dict(items)["a"]
    assert values.array_items(array, 1) == [b"b\x01", b"S\x00\x00\x00\x01x"]


@pytest.mark.parametrize("data", [
    b"\x00\x00\x00\x05\x01aZ\x00\x00",  # unknown tag
    b"\x00\x00\x00\x04\x01aI\x00",  # value runs past the table
    b"\x00\x00\x00\x09\x01a",  # length runs past the data
    b"\x00\x00",  # truncated length
    b"\x00\x00\x00\x02\x05a",  # key runs past the table
])
def test_table_items_rejects_malformed_tables(data: bytes) -> None:
    with pytest.raises(ValueError):
        values.table_items(data)


def test_split_header_rejects_bad_payloads() -> None:
    with pytest.raises(ValueError):
        properties.split_header(b"\x00\x3c")
    with pytest.raises(ValueError):
        properties.split_header(struct.pack(">HHQH", 61, 0, 0, 0))
    with pytest.raises(ValueError):
        properties.split_header(struct.pack(">HHQH", 60, 0, 0, 1))
    with pytest.raises(ValueError):
        properties.split_header(struct.pack(">HHQH", 60, 0, 0, 0x8000) + b"\x05ab")
