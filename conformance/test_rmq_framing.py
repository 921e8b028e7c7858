"""§2.6 channels and framing: connection-level errors, channel_max accounting, reopening."""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator

import pytest
from amqp_conformance import (
    Basic,
    Channel,
    Client,
    Connect,
    Connection,
    Queue,
    body_frame,
    header_frame,
    make_connect,
    method_frame,
    publish_frame,
    queue_declare_frame,
    raw_frame,
    shortstr,
    uniq,
)

from amqpbroker.testing import broker_in_thread


def _declare(channel: int, name: str = "q") -> bytes:
    return queue_declare_frame(channel, name)


def test_second_channel_open(conn: Client) -> None:
    conn.channel(1)
    conn.send_method(1, Channel.Open())
    conn.expect_connection_close(504, "CHANNEL_ERROR - second 'channel.open' seen", 20, 10)


@pytest.mark.parametrize(("data", "class_id", "method_id"), [
    (_declare(5), 50, 10),
    (method_frame(5, 20, 40, struct.pack(">H", 200) + shortstr("") + struct.pack(">HH", 0, 0)),
     20, 40),
    (method_frame(5, 20, 41), 20, 41),
    (method_frame(5, 60, 10, struct.pack(">IH", 0, 1) + b"\x00"), 60, 10),
    (publish_frame(5, "", "q"), 60, 40),
    (method_frame(5, 20, 20, b"\x01"), 20, 20),
], ids=["queue.declare", "channel.close", "channel.close-ok", "basic.qos", "basic.publish",
        "channel.flow"])
def test_method_on_unopened_channel(conn: Client, data: bytes, class_id: int,
                                    method_id: int) -> None:
    conn.send(data)
    conn.expect_connection_close(504, "CHANNEL_ERROR - expected 'channel.open'", class_id,
                                 method_id)


@pytest.mark.parametrize("frame_type", [2, 3])
def test_content_frame_on_unopened_channel_is_an_error(conn: Client, frame_type: int) -> None:
    frame = header_frame(5, 1) if frame_type == 2 else body_frame(5, b"x")
    conn.send(frame)
    close = conn.wait(0, Connection.Close)
    assert close.reply_code in (504, 505), close.reply_text


def test_channel_method_on_channel_zero(conn: Client) -> None:
    conn.send(_declare(0))
    conn.expect_connection_close(
        504, "CHANNEL_ERROR - unexpected method in connection state running", 50, 10)


def test_connection_method_on_channel_one(conn: Client) -> None:
    conn.channel(1)
    conn.send_method(1, Connection.Open("/"))
    conn.expect_connection_close(503, "COMMAND_INVALID - unimplemented method", 10, 40)


def test_frame_larger_than_frame_max(connect: Connect) -> None:
    client = connect(frame_max=4096)
    client.channel(1)
    client.send(publish_frame(1, "", "q") + header_frame(1, 5000) + body_frame(1, b"x" * 5000))
    client.expect_connection_close(
        501, "FRAME_ERROR - type 3, all octets = <<>>: {frame_too_large,5000,4088}", 0, 0)


def test_frame_of_exactly_frame_max_accepted(connect: Connect) -> None:
    client = connect(frame_max=4096)
    ch = client.channel(1)
    q = uniq("q")
    ch.queue_declare(q)
    client.send(publish_frame(1, "", q) + header_frame(1, 4088) + body_frame(1, b"x" * 4088))
    message = ch.get(q, no_ack=True)
    assert message is not None and len(message.body) == 4088


def test_unknown_frame_type(conn: Client) -> None:
    conn.channel(1)
    conn.send(raw_frame(9, 1, b"hello"))
    conn.expect_connection_close(
        501, 'FRAME_ERROR - type 9, all octets = <<"hello">>: unknown_frame', 0, 0)


def test_bad_frame_end(conn: Client) -> None:
    conn.channel(1)
    frame = _declare(1, uniq("q"))
    conn.send(frame[:-1] + b"\x00")
    conn.expect_connection_close(
        501, re.compile(r"FRAME_ERROR - type 1, all octets = <<.*>>: "
                        r"\{invalid_frame_end_marker,0\}", re.DOTALL), 0, 0)


def test_malformed_utf8_in_shortstr(conn: Client) -> None:
    conn.channel(1)
    conn.send(method_frame(1, 50, 10, struct.pack(">H", 0) + shortstr(b"\xff\xfe") + b"\x00"
                           + struct.pack(">I", 0)))
    conn.expect_connection_close(501, "FRAME_ERROR - Malformed UTF-8 in shortstr", 0, 0)


@pytest.mark.parametrize("args", [
    struct.pack(">H", 0) + b"\x32abc",
    struct.pack(">H", 0) + shortstr("q") + b"\x00" + struct.pack(">I", 100) + b"\x01a",
], ids=["truncated-shortstr", "truncated-table"])
def test_truncated_fields(conn: Client, args: bytes) -> None:
    conn.channel(1)
    conn.send(method_frame(1, 50, 10, args))
    conn.expect_connection_close(501, re.compile(r"FRAME_ERROR - cannot decode <<.*>>",
                                                 re.DOTALL))


@pytest.mark.parametrize(("class_id", "method_id"), [(99, 1), (60, 200), (50, 99)])
def test_unknown_class_or_method(conn: Client, class_id: int, method_id: int) -> None:
    # The reference shows a bare RST here; we answer 540 NOT_IMPLEMENTED instead.
    conn.channel(1)
    conn.send(method_frame(1, class_id, method_id, b"\x00\x01\x02\x03"))
    conn.expect_connection_close(540, re.compile(r"NOT_IMPLEMENTED - .*"), class_id, method_id)


def test_heartbeat_on_a_channel(conn: Client) -> None:
    conn.channel(1)
    conn.send(raw_frame(8, 1, b""))
    conn.expect_connection_close(505, "UNEXPECTED_FRAME - type 8, all octets = <<>>", 0, 0)


def test_heartbeat_on_channel_zero_is_fine(conn: Client) -> None:
    conn.send(raw_frame(8, 0, b""))
    conn.assert_usable()


@pytest.mark.parametrize("frame_type", [2, 3], ids=["header", "body"])
def test_content_with_no_method(conn: Client, frame_type: int) -> None:
    conn.channel(1)
    conn.send(header_frame(1, 1) if frame_type == 2 else body_frame(1, b"x"))
    conn.expect_connection_close(
        505, "UNEXPECTED_FRAME - expected method frame, got non method frame instead", 0, 0)


def test_method_where_content_header_is_due(conn: Client) -> None:
    conn.channel(1)
    conn.send(publish_frame(1, "", "q") + _declare(1, uniq("q")))
    conn.expect_connection_close(
        505, "UNEXPECTED_FRAME - expected content header for class 60, got non content header "
             "frame instead", 60, 40)


def test_content_header_of_wrong_class(conn: Client) -> None:
    conn.channel(1)
    conn.send(publish_frame(1, "", "q") + header_frame(1, 1, class_id=50))
    conn.expect_connection_close(
        505, "UNEXPECTED_FRAME - expected content header for class 60, got one for class 50 "
             "instead")


def test_body_longer_than_declared_is_caught_at_the_body(conn: Client) -> None:
    """Stricter than RabbitMQ (which notices only at the next method): the body frame that
    runs past the declared size is itself the 505."""
    conn.channel(1)
    conn.send(publish_frame(1, "", "q") + header_frame(1, 10) + body_frame(1, b"x" * 20)
              + _declare(1, uniq("q")))
    conn.expect_connection_close(
        505, "UNEXPECTED_FRAME - content body longer than declared: 20 > 10")


def test_methods_dropped_after_server_channel_close_until_close_ok(conn: Client) -> None:
    ch = conn.channel(1)
    missing = uniq("q")
    ch.queue_declare(missing, passive=True, ok=False)
    close = ch.wait(Channel.Close)
    assert close.reply_code == 404
    q = uniq("q")
    conn.send(_declare(1, q) + publish_frame(1, "", q) + header_frame(1, 1) + body_frame(1, b"x")
              + method_frame(1, 60, 80, struct.pack(">QB", 99, 0)))
    conn.send_method(1, Channel.CloseOk())
    conn.send_method(1, Channel.Open())
    conn.wait(1, Channel.OpenOk, stop=lambda c, f: c == 1 and not isinstance(f, Channel.OpenOk))
    ch.queue_declare(q, passive=True, ok=False)
    ch.wait(Channel.Close, stop=lambda c, f: c == 1 and isinstance(f, Queue.DeclareOk))


def test_client_channel_close_then_reopen(conn: Client) -> None:
    ch = conn.channel(1)
    ch.call(Channel.Close(200, "bye", 0, 0), Channel.CloseOk)
    ch2 = conn.channel(1)
    assert ch2.queue_declare(uniq("q")).message_count == 0


def test_channel_2047_usable(conn: Client) -> None:
    ch = conn.channel(2047)
    ch.queue_declare(uniq("q"))


def test_deliveries_split_by_frame_max(connect: Connect) -> None:
    client = connect(frame_max=4096)
    ch = client.channel(1)
    q = uniq("q")
    ch.queue_declare(q)
    body = bytes(range(256)) * 40
    ch.publish("", q, body)
    ch.consume(q, no_ack=True)
    assert ch.wait(Basic.Deliver).body == body


# --- channel_max ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def max10() -> Iterator[Connect]:
    """A broker with channel_max=10."""
    clients: list[Client] = []
    with broker_in_thread(channel_max=10) as running:
        yield make_connect(running, clients)
        for client in clients:
            client.close()


def test_tune_announces_configured_channel_max(max10: Connect) -> None:
    assert max10().tune.channel_max == 10


def test_open_more_channels_than_channel_max(max10: Connect) -> None:
    client = max10()
    for number in range(1, 11):
        client.channel(number)
    client.send_method(11, Channel.Open())
    client.expect_connection_close(
        530, "NOT_ALLOWED - number of channels opened (10) has reached the negotiated "
             "channel_max (10)", 0, 0)


def test_open_more_channels_than_negotiated_channel_max(connect: Connect) -> None:
    client = connect(channel_max=5)
    for number in range(1, 6):
        client.channel(number)
    client.send_method(6, Channel.Open())
    client.expect_connection_close(
        530, "NOT_ALLOWED - number of channels opened (5) has reached the negotiated "
             "channel_max (5)", 0, 0)


def test_closed_channels_free_their_slot(max10: Connect) -> None:
    client = max10()
    for number in range(1, 11):
        client.channel(number)
    client.send_method(3, Channel.Close(200, "", 0, 0))
    client.wait(3, Channel.CloseOk)
    client.channel(3).queue_declare(uniq("q"))


def test_channel_number_above_channel_max(max10: Connect) -> None:
    """RabbitMQ accepts channel 11 with channel_max 10: its limit is a count."""
    client = max10()
    client.channel(11).queue_declare(uniq("q"))
