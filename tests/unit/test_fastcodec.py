"""The fast codec against pamqp: same bytes out, same values in, ValueError on bad input."""

from __future__ import annotations

import datetime
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pamqp import body as pamqp_body
from pamqp import commands, encode, frame, header
from pamqp import decode as pamqp_decode

from amqpbroker import values
from amqpbroker.protocol.amqp import fastcodec
from amqpbroker.protocol.amqp.fastcodec import HeaderInfo

# pamqp validates exchange names on construction (regex and <= 127 characters).
EXCHANGE_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:@#,/+ "
exchange_names = st.text(alphabet=EXCHANGE_ALPHABET, max_size=127)
# Any UTF-8 text that fits a shortstr.
short_texts = st.text(st.characters(codec="utf-8"), max_size=60).filter(
    lambda s: len(s.encode()) <= 255
)
# pamqp reads and writes longlong as signed; delivery tags stay below 2**63 in practice
delivery_tags = st.integers(min_value=0, max_value=2**63 - 1)
channels = st.integers(min_value=0, max_value=65535)
frame_maxes = st.one_of(
    st.integers(min_value=9, max_value=300), st.sampled_from([0, 4096, 131072])
)

table_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.text(st.characters(codec="utf-8"), max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(EXCHANGE_ALPHABET, max_size=10), children, max_size=4),
    max_leaves=12,
)
tables = st.dictionaries(st.text(EXCHANGE_ALPHABET, max_size=10), table_values, max_size=5)
optional_texts = st.none() | short_texts
properties = st.builds(
    commands.Basic.Properties,
    content_type=optional_texts,
    content_encoding=optional_texts,
    headers=st.none() | tables,
    delivery_mode=st.sampled_from([None, 1, 2]),
    priority=st.none() | st.integers(min_value=0, max_value=255),
    correlation_id=optional_texts,
    reply_to=optional_texts,
    expiration=st.none() | short_texts,
    message_id=optional_texts,
    timestamp=st.none()
    | st.datetimes(
        min_value=datetime.datetime(1970, 1, 2),
        max_value=datetime.datetime(2100, 1, 1),
        timezones=st.just(datetime.UTC),
    ),
    message_type=optional_texts,
    user_id=optional_texts,
    app_id=optional_texts,
)


def method_payload(method: commands.Basic.Publish | commands.Basic.Ack) -> bytes:
    return struct.pack(">I", method.index) + method.marshal()


def header_payload(props: commands.Basic.Properties, body_size: int = 0) -> bytes:
    return header.ContentHeader(0, body_size, props).marshal()


def split_frames(data: bytes) -> list[tuple[int, int, bytes]]:
    """Raw (type, channel, payload) of every frame, checking sizes and frame-ends."""
    out = []
    pos = 0
    while pos < len(data):
        frame_type, channel, size = struct.unpack_from(">BHI", data, pos)
        assert data[pos + 7 + size] == 0xCE
        out.append((frame_type, channel, data[pos + 7 : pos + 7 + size]))
        pos += 8 + size
    assert pos == len(data)
    return out


def unmarshal_all(data: bytes) -> list[tuple[int, object]]:
    out = []
    while data:
        consumed, channel, value = frame.unmarshal(data)
        out.append((channel, value))
        data = data[consumed:]
    return out


def nested(levels: int, kind: bytes = b"F") -> bytes:
    """A table nesting `levels` containers in all: tables (kind F) or, below the top
    table, arrays (kind A). Built iteratively, innermost first, with no recursion."""
    heads = []
    inner_size = 4  # the innermost container is empty: just its length
    for level in range(levels - 2, -1, -1):
        entry = b"\x01k" + kind if level == 0 or kind == b"F" else kind
        content = len(entry) + inner_size
        heads.append(struct.pack(">I", content) + entry)
        inner_size = 4 + content
    return b"".join(reversed(heads)) + b"\x00\x00\x00\x00"


def python_depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max((python_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((python_depth(v) for v in value), default=0)
    return 0


# --------------------------------------------------------------------------- publish


@given(exchange_names, short_texts, st.booleans(), st.booleans())
def test_decode_publish_matches_pamqp(
    exchange: str, routing_key: str, mandatory: bool, immediate: bool
) -> None:
    method = commands.Basic.Publish(
        exchange=exchange, routing_key=routing_key, mandatory=mandatory, immediate=immediate
    )
    payload = method_payload(method)
    expected = (exchange, routing_key, mandatory, immediate)
    assert fastcodec.decode_publish(payload) == expected
    assert fastcodec.decode_publish(memoryview(payload)) == expected
    assert fastcodec.decode_publish(bytearray(payload)) == expected


@given(exchange_names, short_texts, st.data())
def test_decode_publish_truncated(exchange: str, routing_key: str, data: st.DataObject) -> None:
    payload = method_payload(commands.Basic.Publish(exchange=exchange, routing_key=routing_key))
    cut = data.draw(st.integers(min_value=0, max_value=len(payload) - 1))
    with pytest.raises(ValueError):
        fastcodec.decode_publish(payload[:cut])
    with pytest.raises(ValueError):
        fastcodec.decode_publish(memoryview(payload)[:cut])


def test_decode_publish_every_prefix_raises() -> None:
    payload = method_payload(
        commands.Basic.Publish(exchange="amq.topic", routing_key="a.b.c", mandatory=True)
    )
    assert fastcodec.decode_publish(payload) == ("amq.topic", "a.b.c", True, False)
    for cut in range(len(payload)):
        with pytest.raises(ValueError):
            fastcodec.decode_publish(payload[:cut])


@pytest.mark.parametrize(
    "payload",
    [
        b"\x00\x3c\x00\x28\x00\x00\x02\xff\xfe\x00\x00",  # exchange not UTF-8
        b"\x00\x3c\x00\x28\x00\x00\x00\x01\x80\x00",  # routing key not UTF-8
        b"\x00\x3c\x00\x28\x00\x00\x00\x02\xed\xa0\x00",  # a lone surrogate
    ],
)
def test_decode_publish_invalid_utf8(payload: bytes) -> None:
    with pytest.raises(ValueError):
        fastcodec.decode_publish(payload)


def test_decode_publish_non_ascii_names() -> None:
    payload = (
        b"\x00\x3c\x00\x28\x00\x00"
        + bytes([len("é".encode())])
        + "é".encode()
        + bytes([len("ключ".encode())])
        + "ключ".encode()
        + b"\x03"
    )
    assert fastcodec.decode_publish(payload) == ("é", "ключ", True, True)


# --------------------------------------------------------------------------- ack/reject/nack


@given(delivery_tags, st.booleans())
def test_decode_ack_matches_pamqp(delivery_tag: int, multiple: bool) -> None:
    payload = method_payload(commands.Basic.Ack(delivery_tag=delivery_tag, multiple=multiple))
    assert payload[:4] == b"\x00\x3c\x00\x50"
    assert fastcodec.decode_ack(payload) == (delivery_tag, multiple)
    assert fastcodec.decode_ack(memoryview(payload)) == (delivery_tag, multiple)


@given(delivery_tags, st.booleans())
def test_decode_reject_matches_pamqp(delivery_tag: int, requeue: bool) -> None:
    payload = method_payload(commands.Basic.Reject(delivery_tag=delivery_tag, requeue=requeue))
    assert payload[:4] == b"\x00\x3c\x00\x5a"
    assert fastcodec.decode_reject(payload) == (delivery_tag, requeue)


@given(delivery_tags, st.booleans(), st.booleans())
def test_decode_nack_matches_pamqp(delivery_tag: int, multiple: bool, requeue: bool) -> None:
    payload = method_payload(
        commands.Basic.Nack(delivery_tag=delivery_tag, multiple=multiple, requeue=requeue)
    )
    assert payload[:4] == b"\x00\x3c\x00\x78"
    assert fastcodec.decode_nack(payload) == (delivery_tag, multiple, requeue)


@pytest.mark.parametrize(
    "decoder", [fastcodec.decode_ack, fastcodec.decode_reject, fastcodec.decode_nack]
)
def test_decode_tag_methods_truncated(decoder) -> None:  # type: ignore[no-untyped-def]
    payload = method_payload(commands.Basic.Nack(delivery_tag=5, multiple=True))
    for cut in range(len(payload)):
        with pytest.raises(ValueError):
            decoder(payload[:cut])


@given(channels, delivery_tags, st.booleans())
def test_encode_ack_matches_pamqp(channel: int, delivery_tag: int, multiple: bool) -> None:
    expected = frame.marshal(commands.Basic.Ack(delivery_tag=delivery_tag, multiple=multiple),
                             channel)
    assert fastcodec.encode_ack(channel, delivery_tag, multiple) == expected


@given(channels, delivery_tags, st.booleans(), st.booleans())
def test_encode_nack_matches_pamqp(
    channel: int, delivery_tag: int, multiple: bool, requeue: bool
) -> None:
    method = commands.Basic.Nack(delivery_tag=delivery_tag, multiple=multiple, requeue=requeue)
    assert fastcodec.encode_nack(channel, delivery_tag, multiple, requeue) == frame.marshal(
        method, channel
    )


def test_encode_ack_out_of_range() -> None:
    with pytest.raises(ValueError):
        fastcodec.encode_ack(65536, 1, False)
    with pytest.raises(ValueError):
        fastcodec.encode_nack(1, 2**64, False, False)


@given(channels, exchange_names, short_texts, short_texts)
def test_encode_method_frame_matches_pamqp(
    channel: int, exchange: str, routing_key: str, reply_text: str
) -> None:
    method = commands.Basic.Return(
        reply_code=312, reply_text=reply_text, exchange=exchange, routing_key=routing_key
    )
    payload = method_payload(method)  # type: ignore[arg-type]
    assert fastcodec.encode_method_frame(channel, payload) == frame.marshal(method, channel)


# --------------------------------------------------------------------------- deliver/content


@settings(deadline=None, max_examples=150)
@given(
    channel=channels,
    consumer_tag=short_texts,
    delivery_tag=delivery_tags,
    redelivered=st.booleans(),
    exchange=exchange_names,
    routing_key=short_texts,
    props=properties,
    body=st.binary(max_size=2000),
    frame_max=frame_maxes,
)
def test_encode_deliver_round_trips_through_pamqp(
    channel: int,
    consumer_tag: str,
    delivery_tag: int,
    redelivered: bool,
    exchange: str,
    routing_key: str,
    props: commands.Basic.Properties,
    body: bytes,
    frame_max: int,
) -> None:
    hp = header_payload(props, len(body))
    data = fastcodec.encode_deliver(
        channel,
        consumer_tag.encode(),
        delivery_tag,
        redelivered,
        exchange.encode(),
        routing_key.encode(),
        hp,
        body,
        frame_max,
    )
    frames = unmarshal_all(data)
    assert all(ch == channel for ch, _ in frames)
    deliver = frames[0][1]
    assert isinstance(deliver, commands.Basic.Deliver)
    assert (
        deliver.consumer_tag,
        deliver.delivery_tag,
        deliver.redelivered,
        deliver.exchange,
        deliver.routing_key,
    ) == (consumer_tag, delivery_tag, redelivered, exchange, routing_key)
    expected_deliver = commands.Basic.Deliver(
        consumer_tag=consumer_tag,
        delivery_tag=delivery_tag,
        redelivered=redelivered,
        exchange=exchange,
        routing_key=routing_key,
    )
    raw = split_frames(data)
    method_frame_size = 8 + len(raw[0][2])
    assert data[:method_frame_size] == frame.marshal(expected_deliver, channel)

    content_header = frames[1][1]
    assert isinstance(content_header, header.ContentHeader)
    assert content_header.body_size == len(body)
    expected_header = header.ContentHeader()
    expected_header.unmarshal(hp)
    assert content_header.properties == expected_header.properties
    assert raw[1] == (2, channel, hp)  # reused unchanged

    bodies = frames[2:]
    assert all(isinstance(b, pamqp_body.ContentBody) for _, b in bodies)
    assert b"".join(b.value for _, b in bodies) == body  # type: ignore[attr-defined]
    if not body:
        assert bodies == []
    elif frame_max:
        limit = frame_max - 8
        assert all(len(payload) <= limit for _, _, payload in raw[2:])
        assert len(bodies) == -(-len(body) // limit)
    else:
        assert len(bodies) == 1


@settings(deadline=None)
@given(channels, properties, st.binary(max_size=3000), frame_maxes)
def test_encode_content_matches_pamqp(
    channel: int, props: commands.Basic.Properties, body: bytes, frame_max: int
) -> None:
    content_header = header.ContentHeader(0, len(body), props)
    hp = content_header.marshal()
    data = fastcodec.encode_content(channel, hp, body, frame_max)
    expected = [frame.marshal(content_header, channel)]
    chunk = frame_max - 8 if frame_max else max(len(body), 1)
    for start in range(0, len(body), chunk):
        expected.append(frame.marshal(pamqp_body.ContentBody(body[start : start + chunk]),
                                      channel))
    assert data == b"".join(expected)


@pytest.mark.parametrize("size", [0, 1, 4087, 4088, 4089, 3 * 4088, 3 * 4088 + 1, 100_000])
def test_encode_deliver_body_split(size: int) -> None:
    body = bytes(i % 251 for i in range(size))
    hp = header_payload(commands.Basic.Properties(delivery_mode=2), size)
    data = fastcodec.encode_deliver(3, b"ctag", 9, False, b"", b"q", hp, body, 4096)
    raw = split_frames(data)
    assert [t for t, _, _ in raw[:2]] == [1, 2]
    body_frames = raw[2:]
    assert all(t == 3 and ch == 3 and 0 < len(p) <= 4088 for t, ch, p in body_frames)
    assert len(body_frames) == -(-size // 4088)
    assert b"".join(p for _, _, p in body_frames) == body
    assert fastcodec.encode_content(3, hp, body, 4096) == data[8 + len(raw[0][2]) :]


def test_encode_deliver_accepts_memoryview_body() -> None:
    hp = header_payload(commands.Basic.Properties(), 10)
    body = b"0123456789"
    expected = fastcodec.encode_deliver(1, b"c", 1, True, b"x", b"k", hp, body, 13)
    assert fastcodec.encode_deliver(1, b"c", 1, True, b"x", b"k", hp, memoryview(body), 13) == (
        expected
    )


def test_encode_deliver_frame_max_zero_means_no_limit() -> None:
    hp = header_payload(commands.Basic.Properties(), 300_000)
    body = b"x" * 300_000
    raw = split_frames(fastcodec.encode_deliver(1, b"c", 1, False, b"", b"k", hp, body, 0))
    assert len(raw) == 3 and raw[2][2] == body


@pytest.mark.parametrize(
    "kwargs",
    [
        {"channel": 65536},
        {"channel": -1},
        {"consumer_tag": b"c" * 256},
        {"exchange": b"e" * 256},
        {"routing_key": b"r" * 256},
        {"delivery_tag": 2**64},
        {"delivery_tag": -1},
        {"frame_max": 8},
    ],
)
def test_encode_deliver_out_of_range(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {
        "channel": 1,
        "consumer_tag": b"c",
        "delivery_tag": 1,
        "redelivered": False,
        "exchange": b"",
        "routing_key": b"k",
        "header_payload": header_payload(commands.Basic.Properties(), 1),
        "body": b"x",
        "frame_max": 4096,
    }
    args.update(kwargs)
    with pytest.raises(ValueError):
        fastcodec.encode_deliver(**args)  # type: ignore[arg-type]


def test_encode_content_small_frame_max_raises() -> None:
    with pytest.raises(ValueError):
        fastcodec.encode_content(1, header_payload(commands.Basic.Properties(), 1), b"x", 5)
    # no body, no body frame, so nothing to split
    assert len(split_frames(fastcodec.encode_content(1, b"\x00<\x00\x00" + bytes(10), b"", 5))) == 1


# --------------------------------------------------------------------------- scan_header


@settings(deadline=None, max_examples=200)
@given(props=properties, body_size=st.integers(min_value=0, max_value=2**64 - 1))
def test_scan_header_matches_pamqp(props: commands.Basic.Properties, body_size: int) -> None:
    hp = header_payload(props, body_size)
    info = fastcodec.scan_header(hp)
    assert info.body_size == body_size
    assert info.delivery_mode == (props.delivery_mode or 0)
    assert info.priority == (-1 if props.priority is None else props.priority)
    assert info.expiration == (props.expiration or None)  # pamqp drops ""
    assert info.user_id == (props.user_id or None)
    if props.headers is None:
        assert info.headers_span is None
    else:
        start, end = info.headers_span  # type: ignore[misc]
        consumed, table = pamqp_decode.field_table(hp[start:end])
        assert consumed == end - start
        assert table == props.headers
        assert fastcodec.decode_headers(hp, (start, end)) == props.headers
        assert values.table_depth(hp, start) == python_depth(props.headers)
    # pamqp reads the same header back the same way
    decoded = header.ContentHeader()
    decoded.unmarshal(hp)
    assert decoded.properties.delivery_mode == props.delivery_mode
    assert decoded.properties.expiration == (props.expiration or None)


@settings(deadline=None)
@given(props=properties, data=st.data())
def test_scan_header_truncated(props: commands.Basic.Properties, data: st.DataObject) -> None:
    hp = header_payload(props, 5)
    cut = data.draw(st.integers(min_value=0, max_value=len(hp) - 1))
    with pytest.raises(ValueError):
        fastcodec.scan_header(hp[:cut])


def full_properties() -> commands.Basic.Properties:
    return commands.Basic.Properties(
        content_type="application/json",
        content_encoding="gzip",
        headers={"a": 1, "b": {"c": [1, "two", None]}},
        delivery_mode=2,
        priority=7,
        correlation_id="corr",
        reply_to="amq.rabbitmq.reply-to",
        expiration="60000",
        message_id="m-1",
        timestamp=datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
        message_type="t",
        user_id="guest",
        app_id="app",
    )


def test_scan_header_all_properties_and_cluster_id() -> None:
    # pamqp refuses to marshal a cluster_id; it is the last property, so append it by hand
    hp = bytearray(header_payload(full_properties(), 42))
    hp[12:14] = struct.pack(">H", struct.unpack(">H", hp[12:14])[0] | 0x0004)
    hp += b"\x03old"
    info = fastcodec.scan_header(bytes(hp))
    assert info.body_size == 42
    assert (info.delivery_mode, info.priority, info.expiration) == (2, 7, "60000")
    assert info.headers_span is not None
    assert fastcodec.decode_headers(bytes(hp), info.headers_span) == {
        "a": 1,
        "b": {"c": [1, "two", None]},
    }
    for cut in range(len(hp)):
        with pytest.raises(ValueError):
            fastcodec.scan_header(bytes(hp[:cut]))


def test_scan_header_no_properties() -> None:
    hp = header_payload(commands.Basic.Properties(), 7)
    assert fastcodec.scan_header(hp) == HeaderInfo(7, 0, -1, None, None, None)


def test_scan_header_ignores_trailing_bytes() -> None:
    hp = header_payload(commands.Basic.Properties(priority=3), 7)
    assert fastcodec.scan_header(hp + b"junk") == HeaderInfo(7, 0, 3, None, None, None)


def test_scan_header_rejects_wrong_class_and_continuation() -> None:
    good = header_payload(commands.Basic.Properties(delivery_mode=1), 7)
    with pytest.raises(ValueError):
        fastcodec.scan_header(struct.pack(">H", 50) + good[2:])
    with pytest.raises(ValueError):
        fastcodec.scan_header(good[:12] + struct.pack(">H", 0x1001) + good[14:] + b"\x00\x00")


def test_scan_header_invalid_utf8_expiration() -> None:
    hp = struct.pack(">HHQH", 60, 0, 1, 0x0100) + b"\x02\xff\xfe"
    with pytest.raises(ValueError):
        fastcodec.scan_header(hp)


def test_scan_header_headers_length_past_end() -> None:
    hp = struct.pack(">HHQH", 60, 0, 1, 0x2000) + struct.pack(">I", 100) + b"\x00" * 10
    with pytest.raises(ValueError):
        fastcodec.scan_header(hp)


# --------------------------------------------------------------------------- tables


@given(tables)
def test_table_depth_matches_structure(table: dict[str, object]) -> None:
    data = encode.field_table(table)
    assert values.table_depth(data) == max(1, python_depth(table))
    assert values.table_depth(b"pad" + data, 3) == max(1, python_depth(table))
    assert values.table_depth(memoryview(data)) == max(1, python_depth(table))


@pytest.mark.parametrize(
    ("table", "depth"),
    [
        ({}, 1),
        ({"a": 1, "b": "x"}, 1),
        ({"a": {}}, 2),
        ({"a": {"b": {}}}, 3),
        ({"a": [{}]}, 3),
        ({"a": [], "b": {"c": [[1]]}}, 4),
    ],
)
def test_table_depth_examples(table: dict[str, object], depth: int) -> None:
    assert values.table_depth(encode.field_table(table)) == depth


def test_table_depth_every_tag() -> None:
    entries = [
        (b"t", b"\x01"),
        (b"b", b"\xff"),
        (b"B", b"\xff"),
        (b"U", b"\x00\x01"),
        (b"u", b"\x00\x01"),
        (b"s", b"\x00\x01"),
        (b"I", bytes(4)),
        (b"i", bytes(4)),
        (b"L", bytes(8)),
        (b"l", bytes(8)),
        (b"f", bytes(4)),
        (b"d", bytes(8)),
        (b"D", bytes(5)),
        (b"S", b"\x00\x00\x00\x02hi"),
        (b"x", b"\x00\x00\x00\x01\x00"),
        (b"T", bytes(8)),
        (b"V", b""),
        (b"A", b"\x00\x00\x00\x03b\x01V"),  # an array of an int8 and a void
        (b"F", b"\x00\x00\x00\x00"),
    ]
    content = b"".join(b"\x01" + tag + tag + value for tag, value in entries)  # key = tag
    data = struct.pack(">I", len(content)) + content
    assert values.table_depth(data) == 2


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00\x00\x00",
        b"\x00\x00\x00\x05",  # length past the end
        b"\x00\x00\x00\x03\x01kZ",  # unknown tag
        b"\x00\x00\x00\x03\x01k\x00",  # \x00 is not a tag RabbitMQ knows
        b"\x00\x00\x00\x02\x01k",  # key with no value
        b"\x00\x00\x00\x03\x05k",  # key runs past the table
        b"\x00\x00\x00\x04\x01kI\x00" + bytes(3),  # int runs past its table
        b"\x00\x00\x00\x06\x01kS\x00\x00" + bytes(8),  # longstr length cut by the table
        b"\x00\x00\x00\x07\x01kS\x00\x00\x00\x05" + bytes(8),  # longstr past table
        b"\x00\x00\x00\x07\x01kF\x00\x00\x00\x05" + bytes(8),  # inner table past parent
        b"\x00\x00\x00\x07\x01kA\x00\x00\x00\x01" + bytes(8),  # array cut mid value
        b"\x00\x00\x00\x08\x01kA\x00\x00\x00\x01Z",  # bad tag in an array
    ],
)
def test_table_depth_malformed(data: bytes) -> None:
    with pytest.raises(ValueError):
        values.table_depth(data)


@given(tables, st.data())
def test_table_depth_truncated(table: dict[str, object], data: st.DataObject) -> None:
    encoded = encode.field_table(table)
    cut = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
    with pytest.raises(ValueError):
        values.table_depth(encoded[:cut])


@pytest.mark.parametrize("kind", [b"F", b"A"])
def test_table_depth_deep_nesting_is_iterative(kind: bytes) -> None:
    data = nested(10_000, kind)
    assert values.table_depth(data) == 10_000
    hp = struct.pack(">HHQH", 60, 0, 0, 0x2000) + data
    info = fastcodec.scan_header(hp)
    assert info.headers_span == (14, len(hp))
    with pytest.raises(ValueError):
        fastcodec.decode_headers(hp, info.headers_span)


def test_nested_helper_matches_pamqp() -> None:
    assert nested(3) == encode.field_table({"k": {"k": {}}})
    assert nested(3, b"A") == encode.field_table({"k": [[]]})
    assert nested(1) == encode.field_table({})


def test_decode_headers_depth_limit() -> None:
    hp = struct.pack(">HHQH", 60, 0, 0, 0x2000) + nested(5)
    span = fastcodec.scan_header(hp).headers_span
    assert span is not None
    assert fastcodec.decode_headers(hp, span, max_depth=5) == {"k": {"k": {"k": {"k": {}}}}}
    with pytest.raises(ValueError):
        fastcodec.decode_headers(hp, span, max_depth=4)


def test_decode_headers_rejects_bad_spans_and_values() -> None:
    table = encode.field_table({"a": 1})
    hp = struct.pack(">HHQH", 60, 0, 0, 0x2000) + table
    with pytest.raises(ValueError):
        fastcodec.decode_headers(hp, (14, len(hp) - 1))
    with pytest.raises(ValueError):
        fastcodec.decode_headers(hp, (15, len(hp)))
    # a timestamp far past year 9999 is well formed but pamqp cannot decode it
    bad_ts = b"\x00\x00\x00\x0b\x01kT" + b"\x7f" + bytes(7)
    hp = struct.pack(">HHQH", 60, 0, 0, 0x2000) + bad_ts
    with pytest.raises(ValueError):
        fastcodec.decode_headers(hp, (14, len(hp)))


def test_delivery_tags_are_unsigned_64_bit() -> None:
    top = 2**64 - 1
    assert fastcodec.decode_ack(b"\x00\x3c\x00\x50" + struct.pack(">QB", top, 1)) == (top, True)
    assert fastcodec.encode_ack(1, top, False)[11:19] == struct.pack(">Q", top)
    hp = header_payload(commands.Basic.Properties(), 0)
    data = fastcodec.encode_deliver(1, b"c", top, False, b"", b"k", hp, b"", 4096)
    assert split_frames(data)[0][2][6:14] == struct.pack(">Q", top)
