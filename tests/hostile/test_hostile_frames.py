"""Malformed frames and method arguments after a valid handshake: each ends in Connection.Close."""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator

import pytest
from hostile_support import (
    EMPTY_TABLE,
    FRAME_BODY,
    FRAME_METHOD,
    RawConnection,
    assert_connection_error,
    assert_serves,
    basic_publish,
    body_frame,
    channel_open,
    header_frame,
    heartbeat_frame,
    method_frame,
    method_payload,
    module_broker,
    nested_table,
    queue_declare,
    raw_connection,
    raw_frame,
    shortstr,
    table,
    wait_no_clients,
)
from pamqp import commands

from amqpbroker.testing import EmbeddedBroker

FRAME_ERROR, SYNTAX_ERROR, CHANNEL_ERROR, UNEXPECTED_FRAME = 501, 502, 504, 505
NOT_ALLOWED, NOT_IMPLEMENTED = 530, 540


@pytest.fixture(scope="module")
def broker() -> Iterator[EmbeddedBroker]:
    with module_broker() as running:
        yield running


def _open(broker: EmbeddedBroker, frame_max: int = 131072,
          channel_max: int = 2047) -> RawConnection:
    conn = RawConnection(broker.host, broker.port)
    conn.handshake(channel_max=channel_max, frame_max=frame_max)
    conn.open_channel(1)
    return conn


def _after(broker: EmbeddedBroker, data: bytes, *codes: int, frame_max: int = 131072,
           channel_max: int = 2047) -> str:
    """Send `data` on a fresh open connection (channel 1 open); expect a Connection.Close
    with one of `codes`; check the broker still serves a normal client. Returns the text."""
    conn = _open(broker, frame_max, channel_max)
    try:
        conn.send(data)
        closed = conn.wait_closed(strict=True)
    finally:
        conn.close()
    assert_connection_error(closed, *codes)
    wait_no_clients(broker)
    assert_serves(broker)
    return closed.text


# --- the frame layer ------------------------------------------------------------------------


@pytest.mark.parametrize("end", [0x00, 0xCD, 0xFF, ord("\n")])
def test_wrong_frame_end_octet(broker: EmbeddedBroker, end: int) -> None:
    frame = raw_frame(FRAME_METHOD, 1, method_payload(50, 10, b"\x00\x00\x01q\x00" + EMPTY_TABLE),
                      end=end)
    text = _after(broker, frame, FRAME_ERROR)
    assert "invalid_frame_end_marker" in text


@pytest.mark.parametrize("frame_type", [FRAME_METHOD, FRAME_BODY])
def test_frame_larger_than_frame_max(broker: EmbeddedBroker, frame_type: int) -> None:
    """frame_max counts the 8 octets of framing: the largest payload is 131072 - 8. Only a
    part of the payload is sent: the rest would be read as garbage while the broker waits
    for our Close-Ok."""
    frame = raw_frame(frame_type, 1, b"\x00" * (131072 - 7))
    assert "frame_too_large" in _after(broker, frame[:1000], FRAME_ERROR)


def test_frame_larger_than_a_small_negotiated_frame_max(broker: EmbeddedBroker) -> None:
    body = basic_publish(1) + header_frame(1, 5000) + body_frame(1, b"x" * 5000)[:1000]
    assert "frame_too_large" in _after(broker, body, FRAME_ERROR, frame_max=4096)


def test_frame_header_claiming_4gib_is_refused_at_once(broker: EmbeddedBroker) -> None:
    """The frame header and one octet: the broker must not wait for (or allocate) 4 GiB."""
    data = struct.pack(">BHI", FRAME_BODY, 1, 0xFFFFFFFF) + b"x"
    started = time.monotonic()
    assert "frame_too_large" in _after(broker, data, FRAME_ERROR)
    assert time.monotonic() - started < 3.0


def test_unknown_frame_type(broker: EmbeddedBroker) -> None:
    assert "unknown_frame" in _after(broker, raw_frame(9, 1, b"hello"), FRAME_ERROR)


def test_heartbeat_on_a_channel(broker: EmbeddedBroker) -> None:
    _after(broker, heartbeat_frame(1), UNEXPECTED_FRAME)


# --- unknown methods --------------------------------------------------------------------------


@pytest.mark.parametrize(("channel", "class_id", "method_id", "args"), [
    (1, 99, 1, b""),
    (1, 99, 1, b"some arguments"),
    (1, 60, 200, b""),
    (1, 50, 99, b"\x00\x00"),
    (1, 0xFFFF, 0xFFFF, b"\xff" * 16),
    (0, 10, 99, b""),
    (0, 0xFFFF, 0xFFFF, b""),
], ids=["99/1", "99/1-args", "60/200", "50/99", "65535/65535", "ch0-10/99", "ch0-65535/65535"])
def test_unknown_class_or_method(broker: EmbeddedBroker, channel: int, class_id: int,
                                 method_id: int, args: bytes) -> None:
    _after(broker, method_frame(channel, class_id, method_id, args), NOT_IMPLEMENTED)


def test_method_payload_shorter_than_its_ids(broker: EmbeddedBroker) -> None:
    _after(broker, raw_frame(FRAME_METHOD, 1, b"\x00\x32"), FRAME_ERROR)


# --- content frames -------------------------------------------------------------------------------


OUT_OF_ORDER = {
    "body-without-method": body_frame(1, b"abc"),
    "header-without-method": header_frame(1, 3),
    "body-before-header": basic_publish(1) + body_frame(1, b"abc"),
    "method-instead-of-header": basic_publish(1) + queue_declare(1, b"q"),
    "publish-instead-of-header": basic_publish(1) + basic_publish(1),
    "method-instead-of-body": basic_publish(1) + header_frame(1, 3) + queue_declare(1, b"q"),
    "second-header": basic_publish(1) + header_frame(1, 3) + header_frame(1, 3),
    "header-of-wrong-class": basic_publish(1) + header_frame(1, 3, class_id=50),
    "body-after-empty-body": basic_publish(1) + header_frame(1, 0) + body_frame(1, b"x"),
    "header-on-channel-0": header_frame(0, 3),
    "body-on-channel-0": body_frame(0, b"abc"),
}


@pytest.mark.parametrize("data", OUT_OF_ORDER.values(), ids=OUT_OF_ORDER.keys())
def test_content_frames_out_of_order(broker: EmbeddedBroker, data: bytes) -> None:
    _after(broker, data, UNEXPECTED_FRAME)


@pytest.mark.parametrize("extra", [1, 100, 4000])
def test_body_longer_than_declared(broker: EmbeddedBroker, extra: int) -> None:
    data = basic_publish(1) + header_frame(1, 10) + body_frame(1, b"y" * (10 + extra))
    _after(broker, data, UNEXPECTED_FRAME)


def test_body_longer_than_declared_over_two_frames(broker: EmbeddedBroker) -> None:
    data = (basic_publish(1) + header_frame(1, 10) + body_frame(1, b"y" * 6)
            + body_frame(1, b"y" * 6))
    _after(broker, data, UNEXPECTED_FRAME)


# --- channel numbers ----------------------------------------------------------------------------


@pytest.mark.parametrize(("channel_max", "channel"), [
    (2047, 2048), (2047, 65535), (10, 11), (1, 2),
])
def test_channel_number_above_channel_max_opens(broker: EmbeddedBroker, channel_max: int,
                                                channel: int) -> None:
    """RabbitMQ 3.x: channel_max counts open channels; any number up to 65535 opens."""
    conn = RawConnection(broker.host, broker.port)
    try:
        conn.handshake(channel_max=channel_max)
        conn.send(channel_open(channel))
        number, _ = conn.expect_on(commands.Channel.OpenOk)
    finally:
        conn.close()
    assert number == channel
    assert_serves(broker)


def test_method_on_unopened_channel(broker: EmbeddedBroker) -> None:
    _after(broker, queue_declare(7, b"q"), CHANNEL_ERROR)


def test_second_channel_open(broker: EmbeddedBroker) -> None:
    _after(broker, channel_open(1), CHANNEL_ERROR)


# --- field tables and strings ---------------------------------------------------------------------


@pytest.mark.parametrize("depth", [100, 1000, 10_000])
def test_deeply_nested_argument_table(broker: EmbeddedBroker, depth: int) -> None:
    """A clean answer either way: Declare-Ok (RabbitMQ accepts any depth), a channel error,
    or a 501/502 connection close. Never a crash, never silence."""
    arguments = table(shortstr(b"x-nested") + b"F" + nested_table(depth))
    conn = _open(broker)
    try:
        conn.send(queue_declare(1, b"hostile-nested", arguments))
        received = conn.read_method()
        assert received is not None, "the broker dropped the connection without a Close"
        channel, reply = received
        if isinstance(reply, commands.Connection.Close):
            assert reply.reply_code in (FRAME_ERROR, SYNTAX_ERROR), reply
        elif isinstance(reply, commands.Channel.Close):
            assert channel == 1 and reply.reply_code in (406, 501, 502), reply
        else:
            assert isinstance(reply, commands.Queue.DeclareOk), reply
            conn.send(method_frame(1, 50, 40, b"\x00\x00" + shortstr(b"hostile-nested") + b"\x00"))
            conn.expect(commands.Queue.DeleteOk)
    finally:
        conn.close()
    wait_no_clients(broker)
    assert_serves(broker)


BAD_TAGS = {
    "Z": table(shortstr(b"x-bad") + b"Z" + b"\x00" * 8),
    "NUL": table(shortstr(b"x-bad") + b"\x00" + b"\x00" * 8),
    "0xFF": table(shortstr(b"x-bad") + b"\xff" + b"\x00" * 8),
    "in-array": table(shortstr(b"x-bad") + b"A" + struct.pack(">I", 5) + b"Q" + b"\x00" * 4),
    "in-nested-table": table(shortstr(b"x-bad") + b"F" + table(shortstr(b"k") + b"?abcd")),
    "after-good-entry": table(shortstr(b"x-ok") + b"I" + b"\x00\x00\x00\x01"
                              + shortstr(b"x-bad") + b"#" + b"\x00" * 4),
}


@pytest.mark.parametrize("arguments", BAD_TAGS.values(), ids=BAD_TAGS.keys())
def test_invalid_field_table_type_tag(broker: EmbeddedBroker, arguments: bytes) -> None:
    _after(broker, queue_declare(1, b"hostile-tags", arguments), FRAME_ERROR, SYNTAX_ERROR)


LYING_SHORTSTRS = {
    "queue-name": method_frame(1, 50, 10, b"\x00\x00" + bytes([200]) + b"abc"),
    "queue-name-255": method_frame(1, 50, 10, b"\x00\x00" + bytes([255]) + b"q" * 10),
    "table-key": queue_declare(1, b"q", struct.pack(">I", 6) + bytes([250]) + b"x-abc"),
    "publish-exchange": method_frame(1, 60, 40, b"\x00\x00" + bytes([100]) + b"amq"),
    "publish-routing-key": method_frame(1, 60, 40, b"\x00\x00\x00" + bytes([90]) + b"rk"),
    "exchange-declare-type": method_frame(1, 40, 10, b"\x00\x00" + shortstr(b"x")
                                          + bytes([240]) + b"direct"),
    "channel-close-text": method_frame(1, 20, 40, b"\x00\xc8" + bytes([180]) + b"bye"),
}


@pytest.mark.parametrize("data", LYING_SHORTSTRS.values(), ids=LYING_SHORTSTRS.keys())
def test_shortstr_length_longer_than_the_frame(broker: EmbeddedBroker, data: bytes) -> None:
    _after(broker, data, FRAME_ERROR)


FOUR_GIB = struct.pack(">I", 0xFFFFFFFF)
HUGE_LONGSTRS = {
    "table-value": queue_declare(1, b"hostile-big", table(shortstr(b"x-a") + b"S" + FOUR_GIB
                                                          + b"abc")),
    "table-value-then-entry": queue_declare(
        1, b"hostile-big", table(shortstr(b"x-a") + b"S" + FOUR_GIB + b"abc"
                                 + shortstr(b"x-b") + b"I" + b"\x00" * 4)),
    "byte-array": queue_declare(1, b"hostile-big", table(shortstr(b"x-a") + b"x" + FOUR_GIB)),
    "table-length": queue_declare(1, b"hostile-big", FOUR_GIB + b"\x00" * 8),
    "array-length": queue_declare(1, b"hostile-big", table(shortstr(b"x-a") + b"A" + FOUR_GIB)),
    "consume-arguments": method_frame(1, 60, 20, b"\x00\x00" + shortstr(b"q") + shortstr(b"")
                                      + b"\x00" + table(shortstr(b"x-a") + b"S" + FOUR_GIB)),
}


@pytest.mark.parametrize("data", HUGE_LONGSTRS.values(), ids=HUGE_LONGSTRS.keys())
def test_long_string_claiming_4gib(broker: EmbeddedBroker, data: bytes) -> None:
    """A 4 GiB length inside a small frame: refused (501 or a close) without allocating it."""
    conn = _open(broker)
    try:
        started = time.monotonic()
        conn.send(data)
        closed = conn.wait_closed(strict=True)
    finally:
        conn.close()
    assert closed.bare or closed.code == FRAME_ERROR, str(closed)
    assert time.monotonic() - started < 3.0
    wait_no_clients(broker)
    assert_serves(broker)


def test_long_string_claiming_4gib_in_update_secret(broker: EmbeddedBroker) -> None:
    data = method_frame(0, 10, 70, FOUR_GIB + b"secret" + shortstr(b"reason"))
    conn = _open(broker)
    try:
        conn.send(data)
        closed = conn.wait_closed(strict=True)
    finally:
        conn.close()
    assert closed.bare or closed.code == FRAME_ERROR, str(closed)
    assert_serves(broker)


INVALID_UTF8 = {
    "lone-continuation": b"\x80abc",
    "truncated-sequence": b"queue-\xe2\x82",
    "overlong": b"\xc0\xafqueue",
    "surrogate": b"\xed\xa0\x80",
    "ff": b"\xff\xfe",
}


@pytest.mark.parametrize("name", INVALID_UTF8.values(), ids=INVALID_UTF8.keys())
def test_invalid_utf8_in_queue_name(broker: EmbeddedBroker, name: bytes) -> None:
    _after(broker, queue_declare(1, name), FRAME_ERROR)


@pytest.mark.parametrize("where", ["exchange", "routing-key"])
def test_invalid_utf8_in_publish(broker: EmbeddedBroker, where: str) -> None:
    bad = b"\xff\xfe"
    data = (basic_publish(1, exchange=bad) if where == "exchange"
            else basic_publish(1, routing_key=bad))
    _after(broker, data + header_frame(1, 0), FRAME_ERROR)


def test_invalid_utf8_in_table_key(broker: EmbeddedBroker) -> None:
    arguments = table(shortstr(b"x-\xff") + b"I" + b"\x00\x00\x00\x01")
    _after(broker, queue_declare(1, b"hostile-key", arguments), FRAME_ERROR)


def test_channel_open_with_lying_out_of_band_length(broker: EmbeddedBroker) -> None:
    """Channel.Open's only argument is a shortstr; a length running past the frame is 501."""
    conn = RawConnection(broker.host, broker.port)
    try:
        conn.handshake()
        conn.send(method_frame(3, 20, 10, bytes([50])))
        closed = conn.wait_closed(strict=True)
    finally:
        conn.close()
    assert_connection_error(closed, FRAME_ERROR)
    assert_serves(broker)


@pytest.mark.parametrize("error", [channel_open(1), queue_declare(9, b"q"),
                                   method_frame(1, 99, 1)], ids=["504-open", "504-unopened",
                                                                 "540-unknown"])
def test_close_ok_honoured_after_a_frame_split_across_reads(broker: EmbeddedBroker,
                                                             error: bytes) -> None:
    """A non-framing error (the frame stream is still intact) with a frame cut in two
    behind it: the broker must keep its place in the stream, so that the client's Close-Ok
    that follows the rest of that frame ends the connection at once."""
    conn = _open(broker)
    try:
        split = queue_declare(1, b"hostile-split")
        conn.send(error + split[:9])
        closed = conn.read_method()
        assert closed is not None and isinstance(closed[1], commands.Connection.Close), closed
        time.sleep(0.1)
        conn.send(split[9:] + method_frame(0, 10, 51))
        started = time.monotonic()
        try:
            conn.wait_eof(timeout=3.0)
        except TimeoutError:
            raise AssertionError("Close-Ok ignored: the socket is still open 3 s later") from None
        assert time.monotonic() - started < 1.0
    finally:
        conn.close()
    wait_no_clients(broker)
    assert_serves(broker)


def test_clean_close_after_the_hostile_cases(broker: EmbeddedBroker) -> None:
    with raw_connection(broker) as conn:
        conn.handshake()
        conn.send(method_frame(0, 10, 50, struct.pack(">H", 200) + shortstr(b"bye")
                               + struct.pack(">HH", 0, 0)))
        conn.expect(commands.Connection.CloseOk)
        assert conn.wait_eof() == b""
    wait_no_clients(broker)
    assert_serves(broker)

