"""Unit tests for the frame layer: parse_frames, method_index, decode_method, encode_method."""

from __future__ import annotations

import pytest
from helpers import pamqp_frame, raw_frame
from pamqp import commands, frame

from amqpbroker import errors
from amqpbroker.protocol.amqp import spec
from amqpbroker.protocol.amqp.framing import (
    decode_method,
    encode_method,
    erlang_binary,
    method_index,
    parse_frames,
)
from amqpbroker.protocol.amqp.spec import (
    FRAME_BODY,
    FRAME_HEADER,
    FRAME_HEARTBEAT,
    FRAME_METHOD,
    HEARTBEAT_FRAME,
)

MAX = 131072 - 8


def feed_bytewise(data: bytes, max_payload: int = MAX) -> list[tuple[int, int, bytes]]:
    """Feed `data` one byte at a time, as a reader would, collecting every frame."""
    buffer = bytearray()
    frames: list[tuple[int, int, bytes]] = []
    for i in range(len(data)):
        buffer += data[i:i + 1]
        got, used = parse_frames(buffer, max_payload)
        del buffer[:used]
        frames.extend(got)
    assert not buffer
    return frames


def test_single_frame() -> None:
    data = raw_frame(FRAME_BODY, 5, b"hello")
    frames, used = parse_frames(bytearray(data), MAX)
    assert frames == [(FRAME_BODY, 5, b"hello")]
    assert used == len(data)


def test_empty_and_short_buffers_yield_nothing() -> None:
    assert parse_frames(bytearray(), MAX) == ([], 0)
    data = raw_frame(FRAME_BODY, 1, b"abc")
    for cut in range(len(data)):
        assert parse_frames(bytearray(data[:cut]), MAX) == ([], 0)


def test_byte_by_byte() -> None:
    data = (pamqp_frame(1, commands.Basic.Publish(exchange="x", routing_key="k"))
            + raw_frame(FRAME_HEADER, 1, b"\x00\x3c" + bytes(12))
            + raw_frame(FRAME_BODY, 1, b"payload")
            + HEARTBEAT_FRAME
            + raw_frame(FRAME_BODY, 65535, b""))
    frames = feed_bytewise(data)
    assert [(t, c) for t, c, _ in frames] == [
        (FRAME_METHOD, 1), (FRAME_HEADER, 1), (FRAME_BODY, 1), (FRAME_HEARTBEAT, 0),
        (FRAME_BODY, 65535)]
    assert frames[2][2] == b"payload"
    assert frames[3][2] == b""


def test_several_frames_in_one_buffer_and_a_partial_tail() -> None:
    one = raw_frame(FRAME_BODY, 1, b"a" * 10)
    two = raw_frame(FRAME_BODY, 2, b"b" * 20)
    three = raw_frame(FRAME_METHOD, 3, b"\x00\x14\x00\x0a\x00")
    buffer = bytearray(one + two + three[:-1])
    frames, used = parse_frames(buffer, MAX)
    assert frames == [(FRAME_BODY, 1, b"a" * 10), (FRAME_BODY, 2, b"b" * 20)]
    assert used == len(one) + len(two)
    del buffer[:used]
    buffer += three[-1:]
    frames, used = parse_frames(buffer, MAX)
    assert frames == [(FRAME_METHOD, 3, b"\x00\x14\x00\x0a\x00")]
    assert used == len(three)


def test_parse_does_not_mutate_the_buffer() -> None:
    data = raw_frame(FRAME_BODY, 1, b"xyz") * 2
    buffer = bytearray(data)
    parse_frames(buffer, MAX)
    assert bytes(buffer) == data


def test_frame_at_the_limit_is_accepted() -> None:
    data = raw_frame(FRAME_BODY, 1, b"z" * 4088)
    frames, _ = parse_frames(bytearray(data), 4088)
    assert frames[0][2] == b"z" * 4088


def test_oversized_frame() -> None:
    buffer = bytearray(raw_frame(FRAME_BODY, 1, b"z" * 5000))
    with pytest.raises(errors.AMQPConnectionError) as info:
        parse_frames(buffer, 4088)
    err = info.value
    assert err.reply_code == 501
    assert err.reply_text == "FRAME_ERROR - type 3, all octets = <<>>: {frame_too_large,5000,4088}"
    assert (err.class_id, err.method_id) == (0, 0)


def test_oversized_frame_detected_from_the_header_alone() -> None:
    """No allocation and no waiting for a declared 4 GiB payload."""
    buffer = bytearray(b"\x03\x00\x01\xff\xff\xff\xff\x00")
    with pytest.raises(errors.AMQPConnectionError) as info:
        parse_frames(buffer, 4088)
    assert "{frame_too_large,4294967295,4088}" in info.value.reply_text


def test_bad_frame_end() -> None:
    buffer = bytearray(raw_frame(FRAME_METHOD, 1, b"\x00\x14\x00\x0a\x00", end=0))
    with pytest.raises(errors.AMQPConnectionError) as info:
        parse_frames(buffer, MAX)
    err = info.value
    assert err.reply_code == 501
    assert err.reply_text.startswith("FRAME_ERROR - type 1, all octets = <<")
    assert err.reply_text.endswith(": {invalid_frame_end_marker,0}")


def test_bad_frame_end_after_good_frames() -> None:
    buffer = bytearray(HEARTBEAT_FRAME + raw_frame(FRAME_BODY, 1, b"x", end=0x41))
    with pytest.raises(errors.AMQPConnectionError) as info:
        parse_frames(buffer, MAX)
    assert info.value.reply_text == (
        'FRAME_ERROR - type 3, all octets = <<"x">>: {invalid_frame_end_marker,65}')


def test_unknown_frame_type() -> None:
    buffer = bytearray(raw_frame(9, 0, b"hello"))
    with pytest.raises(errors.AMQPConnectionError) as info:
        parse_frames(buffer, MAX)
    err = info.value
    assert err.reply_code == 501
    assert err.reply_text == 'FRAME_ERROR - type 9, all octets = <<"hello">>: unknown_frame'


def test_unknown_frame_type_fed_byte_by_byte_reports_the_whole_frame() -> None:
    """The error text must not depend on how the bytes were chunked by TCP: RabbitMQ reads
    the whole frame before it looks at the type."""
    with pytest.raises(errors.AMQPConnectionError) as info:
        feed_bytewise(raw_frame(9, 0, b"hello"))
    assert info.value.reply_text == (
        'FRAME_ERROR - type 9, all octets = <<"hello">>: unknown_frame')


@pytest.mark.parametrize("frame_type", [0, 4, 7, 9, 255])
def test_every_unknown_frame_type_is_501(frame_type: int) -> None:
    with pytest.raises(errors.AMQPConnectionError) as info:
        parse_frames(bytearray(raw_frame(frame_type, 1, b"\x01\x02")), MAX)
    assert info.value.reply_code == 501
    assert info.value.reply_text.endswith("unknown_frame")


def test_erlang_binary() -> None:
    assert erlang_binary(b"") == "<<>>"
    assert erlang_binary(b"hello") == '<<"hello">>'
    assert erlang_binary(b"\x00\x01\xff") == "<<0,1,255>>"
    assert erlang_binary(bytes(100)).endswith(",...>>")


def test_method_index() -> None:
    payload = pamqp_frame(1, commands.Queue.Declare(queue="q"))[7:-1]
    assert method_index(payload) == commands.Queue.Declare.index == 0x0032000A
    with pytest.raises(errors.AMQPConnectionError) as info:
        method_index(b"\x00\x32")
    assert info.value.reply_code == 501


def test_decode_known_method() -> None:
    payload = pamqp_frame(1, commands.Queue.Declare(queue="q", durable=True,
                                                     arguments={"x-max-length": 5}))[7:-1]
    method = decode_method(method_index(payload), payload)
    assert isinstance(method, commands.Queue.Declare)
    assert method.queue == "q"
    assert method.durable is True
    assert method.arguments == {"x-max-length": 5}


def test_decode_unknown_method_index() -> None:
    payload = b"\x00\x3c\x00\xc8"  # 60/200
    with pytest.raises(errors.AMQPConnectionError) as info:
        decode_method(method_index(payload), payload)
    err = info.value
    assert err.reply_code == 540
    assert err.reply_text.startswith("NOT_IMPLEMENTED - ")
    assert (err.class_id, err.method_id) == (60, 200)


def test_decode_unknown_class() -> None:
    payload = b"\x03\xe7\x00\x01extra"  # 999/1
    with pytest.raises(errors.AMQPConnectionError) as info:
        decode_method(method_index(payload), payload)
    assert info.value.reply_code == 540
    assert (info.value.class_id, info.value.method_id) == (999, 1)


def test_decode_truncated_method_is_501() -> None:
    payload = pamqp_frame(1, commands.Queue.Declare(queue="some-queue"))[7:-1][:9]
    with pytest.raises(errors.AMQPConnectionError) as info:
        decode_method(method_index(payload), payload)
    err = info.value
    assert err.reply_code == 501
    assert err.reply_text.startswith("FRAME_ERROR - cannot decode <<")
    assert (err.class_id, err.method_id) == (50, 10)


def test_decode_malformed_utf8_shortstr() -> None:
    # Queue.Declare: ticket, then the queue name as a shortstr holding invalid UTF-8
    payload = b"\x00\x32\x00\x0a\x00\x00\x02\xff\xfe\x00\x00\x00\x00\x00"
    with pytest.raises(errors.AMQPConnectionError) as info:
        decode_method(method_index(payload), payload)
    assert info.value.reply_code == 501
    assert info.value.reply_text == "FRAME_ERROR - Malformed UTF-8 in shortstr"


@pytest.mark.parametrize("method", [
    commands.Connection.Start(server_properties={"capabilities": {"basic.nack": True}},
                              mechanisms="PLAIN AMQPLAIN", locales="en_US"),
    commands.Connection.Tune(channel_max=2047, frame_max=131072, heartbeat=60),
    commands.Connection.Close(reply_code=320, reply_text="CONNECTION_FORCED - bye",
                              class_id=0, method_id=0),
    commands.Channel.Close(reply_code=406, reply_text="PRECONDITION_FAILED - x",
                           class_id=60, method_id=80),
    commands.Queue.DeclareOk(queue="amq.gen-abc", message_count=3, consumer_count=1),
    commands.Basic.ConsumeOk(consumer_tag="amq.ctag-1"),
    commands.Basic.GetOk(delivery_tag=7, redelivered=True, exchange="x", routing_key="k",
                         message_count=2),
    commands.Exchange.Declare(exchange="x", exchange_type="headers",
                              arguments={"alternate-exchange": "ae", "n": {"deep": [1, 2]}}),
])
def test_encode_method_round_trip(method: object) -> None:
    data = encode_method(3, method)
    assert data == frame.marshal(method, 3)
    used, channel, decoded = frame.unmarshal(data)
    assert used == len(data)
    assert channel == 3
    assert type(decoded) is type(method)
    assert dict(decoded) == dict(method)


@pytest.mark.parametrize("name", [
    "q" * 128, "q" * 255, "é" * 127, "очередь.ключ", "名前 with spaces/and:punct#*", "\u2603",
])
def test_names_beyond_pamqp_rules_encode_and_decode(name: str) -> None:
    """pamqp's 127-character, narrow-charset validation is relaxed: RabbitMQ takes any
    UTF-8 shortstr of up to 255 bytes."""
    declare = commands.Queue.Declare(queue=name)
    data = encode_method(1, declare)
    _, _, decoded = frame.unmarshal(data)
    assert decoded.queue == name
    payload = data[7:-1]
    assert decode_method(method_index(payload), payload).queue == name
    publish = commands.Exchange.Declare(exchange=name, exchange_type="topic")
    _, _, decoded = frame.unmarshal(encode_method(1, publish))
    assert decoded.exchange == name


def test_pamqp_validation_relaxed_for_every_method() -> None:
    for cls in frame.commands.INDEX_MAPPING.values():
        assert cls.validate.__name__ == "_no_validation"
    assert spec.PROTOCOL_HEADER == b"AMQP\x00\x00\x09\x01"
