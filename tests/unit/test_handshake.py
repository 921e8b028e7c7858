"""Unit tests for the connection state machine: handshake, channels, heartbeats, closing."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import (
    CAPABILITIES,
    CLIENT_PROPERTIES,
    Driven,
    RecordingHandler,
    content_frames,
    header_payload,
    limits,
    methods,
    open_channel,
    open_connection,
    pamqp_frame,
    plain_start_ok,
    publish_frames,
    raw_frame,
)
from pamqp import commands, encode

from amqpbroker import errors
from amqpbroker.protocol.amqp import connection as proto
from amqpbroker.protocol.amqp.connection import Limits
from amqpbroker.protocol.amqp.spec import FRAME_BODY, HEARTBEAT_FRAME, PROTOCOL_HEADER

LOGIN_REFUSED = ("ACCESS_REFUSED - Login was refused using authentication mechanism {}. "
                 "For details see the broker logfile.")


def fresh(handler: Any = None, conn_limits: Limits | None = None,
          now: float = 0.0) -> tuple[Driven, RecordingHandler]:
    handler = RecordingHandler() if handler is None else handler
    return Driven(handler, CAPABILITIES, conn_limits, now), handler


def started(now: float = 0.0) -> tuple[Driven, RecordingHandler]:
    conn, handler = fresh(now=now)
    conn.receive_data(PROTOCOL_HEADER, now)
    (_, start), = methods(conn.data_to_send(now))
    assert isinstance(start, commands.Connection.Start)
    return conn, handler


def tuned(now: float = 0.0) -> tuple[Driven, RecordingHandler]:
    conn, handler = started(now)
    conn.receive_data(pamqp_frame(0, plain_start_ok()), now)
    (_, tune), = methods(conn.data_to_send(now))
    assert isinstance(tune, commands.Connection.Tune)
    return conn, handler


def sent(conn: Driven, now: float = 0.0) -> list[tuple[int, Any]]:
    return methods(conn.data_to_send(now))


def assert_closed_with(conn: Driven, code: int, text: str | None = None,
                       class_method: tuple[int, int] | None = None,
                       now: float = 0.0) -> commands.Connection.Close:
    out = sent(conn, now)
    assert out, "expected a Connection.Close"
    channel, close = out[-1]
    assert channel == 0
    assert isinstance(close, commands.Connection.Close), out
    assert close.reply_code == code, close.reply_text
    if text is not None:
        assert close.reply_text == text
    if class_method is not None:
        assert (close.class_id, close.method_id) == class_method
    assert conn.state in (proto.CLOSING, proto.CLOSED)
    return close


def assert_dropped_silently(conn: Driven, now: float = 0.0) -> None:
    """A handshake failure RabbitMQ answers with no Close frame, only by dropping the
    socket (after a fixed delay the transport may add)."""
    out = sent(conn, now)
    assert not [m for _, m in out if isinstance(m, commands.Connection.Close)], out
    assert conn.closed


# --- protocol header ----------------------------------------------------------------------


@pytest.mark.parametrize("header", [
    b"AMQP\x00\x00\x09\x00", b"AMQP\x00\x00\x08\x00", b"AMQP\x00\x01\x00\x00",
    b"AMQP\x03\x01\x00\x00", b"AMQX\x00\x00\x09\x01", b"GET / HTTP/1.1\r\n\r\n",
])
def test_bad_header_gets_our_header_and_closed(header: bytes) -> None:
    conn, _ = fresh()
    conn.receive_data(header, 0.0)
    assert conn.data_to_send(0.0) == PROTOCOL_HEADER
    assert conn.closed
    # nothing more is read or answered
    conn.receive_data(PROTOCOL_HEADER, 0.1)
    assert conn.data_to_send(0.1) == b""
    assert conn.tick(0.2) is False


def test_header_in_pieces() -> None:
    conn, _ = fresh()
    for byte in PROTOCOL_HEADER[:-1]:
        conn.receive_data(bytes([byte]), 0.0)
        assert conn.data_to_send(0.0) == b""
        assert conn.state == proto.HEADER
    conn.receive_data(PROTOCOL_HEADER[-1:], 0.0)
    (channel, start), = sent(conn)
    assert channel == 0
    assert isinstance(start, commands.Connection.Start)


def test_header_and_start_ok_in_one_read() -> None:
    conn, _ = fresh()
    conn.receive_data(PROTOCOL_HEADER + pamqp_frame(0, plain_start_ok()), 0.0)
    out = sent(conn)
    assert [type(m) for _, m in out] == [commands.Connection.Start, commands.Connection.Tune]


def test_start_fields() -> None:
    conn, _ = fresh()
    conn.receive_data(PROTOCOL_HEADER, 0.0)
    (_, start), = sent(conn)
    assert (start.version_major, start.version_minor) == (0, 9)
    assert start.mechanisms == "PLAIN AMQPLAIN"
    assert start.locales == "en_US"
    props = start.server_properties
    assert list(props) == ["capabilities", "cluster_name", "copyright", "information",
                           "platform", "product", "version"]
    assert props["capabilities"] == CAPABILITIES
    for key in list(props)[1:]:
        assert isinstance(props[key], str | bytes) and props[key]


# --- authentication -----------------------------------------------------------------------


def test_plain_login_and_tune() -> None:
    conn, handler = started()
    conn.receive_data(pamqp_frame(0, plain_start_ok()), 0.0)
    (channel, tune), = sent(conn)
    assert channel == 0
    assert isinstance(tune, commands.Connection.Tune)
    assert (tune.channel_max, tune.frame_max, tune.heartbeat) == (2047, 131072, 60)
    assert handler.named("authenticate") == [("authenticate", "PLAIN", "guest", "guest")]
    assert conn.username == "guest"
    assert conn.client_properties == CLIENT_PROPERTIES
    assert conn.client_capabilities["authentication_failure_close"] is True


def test_amqplain_login() -> None:
    conn, handler = started()
    response = encode.field_table({"LOGIN": "guest", "PASSWORD": "guest"})[4:]
    conn.receive_data(pamqp_frame(0, commands.Connection.StartOk(
        client_properties=CLIENT_PROPERTIES, mechanism="AMQPLAIN",
        response=response.decode("ascii"), locale="en_US")), 0.0)
    (_, tune), = sent(conn)
    assert isinstance(tune, commands.Connection.Tune)
    assert handler.named("authenticate") == [("authenticate", "AMQPLAIN", "guest", "guest")]


@pytest.mark.parametrize(("mechanism", "response"), [
    ("PLAIN", "\0guest\0wrong"),
    ("PLAIN", "\0nobody\0guest"),
    ("AMQPLAIN", encode.field_table({"LOGIN": "guest", "PASSWORD": "nope"})[4:].decode()),
])
def test_bad_credentials(mechanism: str, response: str) -> None:
    conn, handler = started()
    conn.receive_data(pamqp_frame(0, commands.Connection.StartOk(
        client_properties=CLIENT_PROPERTIES, mechanism=mechanism, response=response,
        locale="en_US")), 0.0)
    assert_closed_with(conn, 403, LOGIN_REFUSED.format(mechanism), (0, 0))
    assert conn.state == proto.CLOSING
    assert handler.named("closed") == [("closed",)]
    # the client's Close-Ok ends it
    conn.receive_data(pamqp_frame(0, commands.Connection.CloseOk()), 0.1)
    assert conn.closed


@pytest.mark.parametrize(("mechanism", "response"), [
    ("EXTERNAL", ""),
    ("plain", "\0guest\0guest"),
    ("PLAIN", "guest\0guest"),
    ("PLAIN", "authz\0guest\0guest"),
    ("AMQPLAIN", "garbage"),
])
def test_unusable_mechanism_or_response_is_dropped_silently(mechanism: str,
                                                              response: str) -> None:
    conn, handler = started()
    conn.receive_data(pamqp_frame(0, commands.Connection.StartOk(
        client_properties=CLIENT_PROPERTIES, mechanism=mechanism, response=response,
        locale="en_US")), 0.0)
    assert_dropped_silently(conn)
    assert handler.named("authenticate") == []


# --- tune ---------------------------------------------------------------------------------


def test_tune_ok_lower_values_win() -> None:
    conn, _ = open_connection(tune=(100, 8192, 30))
    assert (conn.channel_max, conn.frame_max, conn.heartbeat) == (100, 8192, 30)
    assert conn.max_payload == 8192 - 8


@pytest.mark.parametrize("heartbeat", [0, 5, 60, 600])
def test_tune_ok_heartbeat_used_as_is(heartbeat: int) -> None:
    conn, _ = open_connection(tune=(2047, 131072, heartbeat))
    assert conn.heartbeat == heartbeat


def test_tune_ok_limits_at_the_edges() -> None:
    conn, _ = open_connection(tune=(1, 4096, 0))
    assert (conn.channel_max, conn.frame_max) == (1, 4096)
    conn, _ = open_connection(tune=(2047, 131072, 0))
    assert (conn.channel_max, conn.frame_max) == (2047, 131072)


@pytest.mark.parametrize("tune", [
    (2047, 4095, 60),
    (2047, 1024, 60),
    (2047, 131073, 60),
    (2048, 131072, 60),
    (65535, 131072, 60),
])
def test_bad_tune_ok_fails_the_handshake(tune: tuple[int, int, int]) -> None:
    """RabbitMQ: frame_max outside [4096, ours] or channel_max above ours is a handshake
    failure: no Close frame, the socket is dropped."""
    conn, _ = tuned()
    conn.receive_data(pamqp_frame(0, commands.Connection.TuneOk(*tune)), 0.0)
    assert_dropped_silently(conn)
    conn.receive_data(pamqp_frame(0, commands.Connection.Open(virtual_host="/")), 0.0)
    assert not [m for _, m in sent(conn) if isinstance(m, commands.Connection.OpenOk)]


@pytest.mark.parametrize("tune", [(0, 131072, 60), (2047, 0, 60), (0, 0, 0)])
def test_tune_ok_zero_means_the_server_limit(tune: tuple[int, int, int]) -> None:
    """Per spec (lower non-zero wins), 0 for channel_max or frame_max
    means "no limit of mine", so the server's own limit applies."""
    conn, _ = tuned()
    conn.receive_data(pamqp_frame(0, commands.Connection.TuneOk(*tune)), 0.0)
    assert conn.state == proto.OPEN
    assert conn.channel_max == (tune[0] or 2047)
    assert conn.frame_max == (tune[1] or 131072)


# --- open ---------------------------------------------------------------------------------


def test_open() -> None:
    conn, handler = open_connection()
    assert conn.state == proto.RUNNING
    assert conn.vhost == "/"
    assert handler.named("open_vhost") == [("open_vhost", "/")]


def test_open_unknown_vhost() -> None:
    conn, handler = tuned()
    conn.receive_data(pamqp_frame(0, commands.Connection.TuneOk(2047, 131072, 60)), 0.0)
    conn.receive_data(pamqp_frame(0, commands.Connection.Open(virtual_host="nope")), 0.0)
    assert_closed_with(conn, 530, "NOT_ALLOWED - vhost nope not found", (10, 40))
    assert conn.state == proto.CLOSING
    assert handler.named("closed") == [("closed",)]


def test_method_before_open_is_a_handshake_failure() -> None:
    conn, _ = tuned()
    conn.receive_data(pamqp_frame(0, commands.Connection.TuneOk(2047, 131072, 60)), 0.0)
    conn.receive_data(pamqp_frame(1, commands.Channel.Open()), 0.0)
    assert_dropped_silently(conn)


def test_pre_auth_frame_limit() -> None:
    """Before Open-Ok a frame may be 4096 bytes in all; one byte more ends the handshake."""
    conn, handler = started()
    conn.receive_data(raw_frame(8, 0, b"") + raw_frame(FRAME_BODY, 0, b"x" * 4089)[:20], 0.0)
    assert_dropped_silently(conn)
    assert handler.named("authenticate") == []


def test_pre_auth_frame_at_the_limit_is_read() -> None:
    conn, _ = started()

    def start_ok(pad: int) -> bytes:
        return pamqp_frame(0, commands.Connection.StartOk(
            client_properties={"pad": "p" * pad}, mechanism="PLAIN",
            response="\0guest\0guest", locale="en_US"))

    frame = start_ok(4000 + 4096 - len(start_ok(4000)))
    assert len(frame) == 4096
    conn.receive_data(frame, 0.0)
    (_, tune), = sent(conn)
    assert isinstance(tune, commands.Connection.Tune)


def test_after_open_frames_up_to_frame_max_are_read() -> None:
    conn, handler = open_connection(tune=(2047, 8192, 0))
    open_channel(conn, 1)
    conn.receive_data(pamqp_frame(1, commands.Basic.Publish(routing_key="q"))
                      + raw_frame(2, 1, header_payload(8184))
                      + raw_frame(FRAME_BODY, 1, b"b" * 8184), 0.0)
    (publish,) = handler.named("publish")
    assert publish[5] == b"b" * 8184
    conn.receive_data(raw_frame(FRAME_BODY, 1, b"b" * 8185), 0.0)
    assert_closed_with(conn, 501, "FRAME_ERROR - type 3, all octets = <<>>: "
                       "{frame_too_large,8185,8184}", (0, 0))


# --- time ---------------------------------------------------------------------------------


def test_handshake_timeout() -> None:
    conn, handler = fresh(now=100.0)
    conn.receive_data(b"AMQ", 101.0)
    assert conn.tick(105.0) is True
    assert conn.tick(110.0) is True
    assert conn.next_deadline() == 110.0
    assert conn.tick(110.01) is False
    assert conn.closed
    assert conn.data_to_send(110.01) == b""
    assert handler.named("closed") == [("closed",)]


def test_handshake_timeout_counts_from_the_start_not_the_last_byte() -> None:
    """A slowloris that sends one byte a second still times out at 10 s."""
    conn, _ = started(now=0.0)
    start_ok = pamqp_frame(0, plain_start_ok())
    now = 0.0
    for i in range(10):
        now = 1.0 + i
        conn.receive_data(start_ok[i:i + 1], now)
        assert conn.tick(now) is True
    assert conn.tick(10.5) is False
    assert conn.closed


def test_no_handshake_timeout_once_running() -> None:
    conn, _ = open_connection(tune=(2047, 131072, 0))
    assert conn.tick(1000.0) is True
    assert conn.next_deadline() == float("inf")


def test_heartbeat_sent_when_idle_for_half_the_interval() -> None:
    conn, _ = open_connection(tune=(2047, 131072, 10))
    assert conn.tick(4.9) is True
    assert conn.data_to_send(4.9) == b""
    assert conn.next_deadline() == 5.0
    assert conn.tick(5.0) is True
    assert conn.data_to_send(5.0) == HEARTBEAT_FRAME
    assert conn.tick(6.0) is True
    assert conn.data_to_send(6.0) == b""
    assert conn.tick(10.0) is True
    assert conn.data_to_send(10.0) == HEARTBEAT_FRAME


def test_no_heartbeat_while_other_output_flows() -> None:
    conn, _ = open_connection(tune=(2047, 131072, 10))
    open_channel(conn, 1, now=4.0)
    assert conn.tick(8.0) is True
    assert conn.data_to_send(8.0) == b""


def test_silent_peer_is_dead_after_two_intervals() -> None:
    conn, handler = open_connection(tune=(2047, 131072, 10))
    conn.receive_data(HEARTBEAT_FRAME, 15.0)
    assert conn.tick(30.0) is True
    assert conn.tick(35.0) is True
    assert conn.tick(35.1) is False
    assert conn.closed
    assert handler.named("closed") == [("closed",)]
    assert conn.close_reason is not None and "heartbeat" in conn.close_reason


def test_any_frame_counts_as_life() -> None:
    conn, _ = open_connection(tune=(2047, 131072, 10))
    open_channel(conn, 1, now=19.0)
    assert conn.tick(39.0) is True
    assert conn.tick(39.5) is False


def test_heartbeat_disabled() -> None:
    conn, _ = open_connection(tune=(2047, 131072, 0))
    assert conn.tick(10_000.0) is True
    assert conn.data_to_send(10_000.0) == b""


def test_heartbeat_on_a_channel_is_505() -> None:
    conn, _ = open_connection()
    conn.receive_data(b"\x08\x00\x01\x00\x00\x00\x00\xce", 0.0)
    assert_closed_with(conn, 505, "UNEXPECTED_FRAME - type 8, all octets = <<>>", (0, 0))


# --- closing ------------------------------------------------------------------------------


def test_client_close() -> None:
    conn, handler = open_connection()
    open_channel(conn, 1)
    conn.receive_data(pamqp_frame(0, commands.Connection.Close(200, "bye", 0, 0)), 0.0)
    out = sent(conn)
    assert [(ch, type(m)) for ch, m in out] == [(0, commands.Connection.CloseOk)]
    assert conn.closed
    assert handler.named("closed") == [("closed",)]
    assert conn.tick(1.0) is False


def test_server_close_waits_for_close_ok_and_drops_the_rest() -> None:
    conn, handler = open_connection()
    open_channel(conn, 1)
    conn.close(errors.AMQPConnectionError(errors.CONNECTION_FORCED, "shutdown"))
    assert_closed_with(conn, 320, "CONNECTION_FORCED - shutdown", (0, 0))
    assert conn.state == proto.CLOSING
    calls = len(handler.calls)
    conn.receive_data(pamqp_frame(1, commands.Basic.Qos(prefetch_count=1))
                      + publish_frames(1, b"late"), 0.1)
    assert sent(conn, 0.1) == []
    assert len(handler.calls) == calls
    conn.receive_data(pamqp_frame(0, commands.Connection.CloseOk()), 0.2)
    assert conn.closed


def test_crossing_close_while_closing() -> None:
    conn, _ = open_connection()
    conn.close(errors.AMQPConnectionError(errors.CONNECTION_FORCED, "shutdown"))
    sent(conn)
    conn.receive_data(pamqp_frame(0, commands.Connection.Close(200, "bye", 0, 0)), 0.1)
    assert [type(m) for _, m in sent(conn, 0.1)] == [commands.Connection.CloseOk]
    assert conn.closed


def test_closing_times_out_without_close_ok() -> None:
    conn, _ = open_connection(tune=(2047, 131072, 0))
    conn.close(errors.AMQPConnectionError(errors.CONNECTION_FORCED, "shutdown"))
    assert conn.tick(5.0) is True
    assert conn.tick(10.5) is False
    assert conn.closed


def test_channel_method_on_channel_zero() -> None:
    conn, _ = open_connection()
    conn.receive_data(pamqp_frame(0, commands.Queue.Declare(queue="q")), 0.0)
    assert_closed_with(conn, 504, "CHANNEL_ERROR - unexpected method in connection state "
                       "running", (50, 10))


def test_connection_method_on_a_channel() -> None:
    conn, _ = open_connection()
    open_channel(conn, 1)
    conn.receive_data(pamqp_frame(1, commands.Connection.Open(virtual_host="/")), 0.0)
    assert_closed_with(conn, 503, "COMMAND_INVALID - unimplemented method", (10, 40))


def test_update_secret_is_accepted_whatever_the_secret() -> None:
    """RabbitMQ with the internal user database: any new secret gets Update-Secret-Ok
    (it is not re-checked as a password) and the connection stays open."""
    conn, handler = open_connection()
    conn.receive_data(pamqp_frame(0, commands.Connection.UpdateSecret(
        new_secret="not-the-password", reason="refresh")), 0.0)
    (channel, ok), = sent(conn)
    assert channel == 0
    assert isinstance(ok, commands.Connection.UpdateSecretOk)
    assert handler.named("update_secret") == [
        ("update_secret", "guest", b"not-the-password", "refresh")]
    assert handler.named("authenticate") == [("authenticate", "PLAIN", "guest", "guest")]
    assert conn.state == proto.RUNNING
    open_channel(conn, 1)


def test_update_secret_refused_by_a_backend() -> None:
    """A backend that refuses the secret (a token backend would): 530, as RabbitMQ."""
    conn, handler = open_connection()
    handler.raise_on[commands.Connection.UpdateSecret.index] = errors.secret_refused()
    conn.receive_data(pamqp_frame(0, commands.Connection.UpdateSecret(
        new_secret="x", reason="refresh")), 0.0)
    assert_closed_with(conn, 530, "NOT_ALLOWED - New secret was refused by one of the "
                       "backends", (10, 70))


# --- channels -----------------------------------------------------------------------------


def test_channel_open_and_close_bookkeeping() -> None:
    conn, handler = open_connection()
    conn.receive_data(pamqp_frame(1, commands.Channel.Open())
                      + pamqp_frame(2, commands.Channel.Open()), 0.0)
    assert [(ch, type(m)) for ch, m in sent(conn)] == [
        (1, commands.Channel.OpenOk), (2, commands.Channel.OpenOk)]
    assert set(conn.channels) == {1, 2}
    assert handler.named("channel_open") == [("channel_open", 1), ("channel_open", 2)]
    conn.receive_data(pamqp_frame(1, commands.Channel.Close(200, "bye", 0, 0)), 0.0)
    assert [(ch, type(m)) for ch, m in sent(conn)] == [(1, commands.Channel.CloseOk)]
    assert set(conn.channels) == {2}
    assert handler.named("channel_closed") == [("channel_closed", 1)]
    # the number can be used again
    open_channel(conn, 1)
    assert set(conn.channels) == {1, 2}


def test_methods_reach_the_handler() -> None:
    conn, handler = open_connection()
    open_channel(conn, 1)
    conn.receive_data(pamqp_frame(1, commands.Queue.Declare(queue="q", durable=True)), 0.0)
    (_, channel, index, args), = handler.named("method")
    assert (channel, index) == (1, commands.Queue.Declare.index)
    assert args.queue == "q" and args.durable is True


def test_fast_path_methods_reach_the_handler_as_tuples() -> None:
    conn, handler = open_connection()
    open_channel(conn, 1)
    conn.receive_data(pamqp_frame(1, commands.Basic.Ack(delivery_tag=7, multiple=True))
                      + pamqp_frame(1, commands.Basic.Nack(delivery_tag=8, requeue=False))
                      + pamqp_frame(1, commands.Basic.Reject(delivery_tag=9)), 0.0)
    assert [c[2:] for c in handler.named("method")] == [
        (commands.Basic.Ack.index, (7, True)),
        (commands.Basic.Nack.index, (8, False, False)),
        (commands.Basic.Reject.index, (9, True)),
    ]


def test_publish_is_assembled() -> None:
    conn, handler = open_connection(tune=(2047, 4096, 0))
    open_channel(conn, 1)
    data = bytes(range(256)) * 40
    props = commands.Basic.Properties(delivery_mode=2, expiration="60000")
    frames = publish_frames(1, data, exchange="amq.topic", routing_key="a.b", frame_max=4096,
                            properties=props)
    for i in range(0, len(frames), 1000):
        conn.receive_data(frames[i:i + 1000], 0.0)
    (_, channel, args, _, info, body), = handler.named("publish")
    assert channel == 1
    assert args == ("amq.topic", "a.b", False, False)
    assert body == data
    assert (info.body_size, info.delivery_mode, info.expiration) == (len(data), 2, "60000")
    assert sent(conn) == []


def test_empty_publish_is_assembled() -> None:
    conn, handler = open_connection()
    open_channel(conn, 1)
    conn.receive_data(publish_frames(1, b""), 0.0)
    (publish,) = handler.named("publish")
    assert publish[5] == b""


def test_oversized_message_closes_the_channel_after_the_body() -> None:
    conn, handler = open_connection(conn_limits=limits(max_message_size=10))
    open_channel(conn, 1)
    conn.receive_data(publish_frames(1, b"x" * 11), 0.0)
    (channel, close), = sent(conn)
    assert channel == 1
    assert isinstance(close, commands.Channel.Close)
    assert close.reply_code == 406
    assert close.reply_text == (
        "PRECONDITION_FAILED - message size 11 is larger than configured max size 10")
    assert (close.class_id, close.method_id) == (60, 40)
    assert handler.named("publish") == []
    assert conn.state == proto.RUNNING


def test_method_where_header_due_closes_the_connection() -> None:
    conn, _ = open_connection()
    open_channel(conn, 1)
    conn.receive_data(pamqp_frame(1, commands.Basic.Publish(routing_key="q"))
                      + pamqp_frame(1, commands.Basic.Qos(prefetch_count=1)), 0.0)
    assert_closed_with(conn, 505, "UNEXPECTED_FRAME - expected content header for class 60, "
                       "got non content header frame instead", (60, 40))


def test_body_with_no_method_closes_the_connection() -> None:
    conn, _ = open_connection()
    open_channel(conn, 1)
    conn.receive_data(raw_frame(FRAME_BODY, 1, b"stray"), 0.0)
    assert_closed_with(conn, 505, "UNEXPECTED_FRAME - expected method frame, got non method "
                       "frame instead")


def test_second_open() -> None:
    conn, _ = open_connection()
    open_channel(conn, 1)
    conn.receive_data(pamqp_frame(1, commands.Channel.Open()), 0.0)
    assert_closed_with(conn, 504, "CHANNEL_ERROR - second 'channel.open' seen", (20, 10))


@pytest.mark.parametrize("method", [
    commands.Basic.Qos(prefetch_count=1),
    commands.Queue.Declare(queue="q"),
    commands.Channel.Close(200, "bye", 0, 0),
    commands.Channel.CloseOk(),
    commands.Basic.Ack(delivery_tag=1),
    commands.Basic.Publish(routing_key="q"),
])
def test_method_on_unopened_channel(method: Any) -> None:
    conn, handler = open_connection()
    conn.receive_data(pamqp_frame(3, method), 0.0)
    index = method.index
    assert_closed_with(conn, 504, "CHANNEL_ERROR - expected 'channel.open'",
                       (index >> 16, index & 0xFFFF))
    assert handler.named("method") == []


def test_content_on_unopened_channel() -> None:
    conn, _ = open_connection()
    conn.receive_data(content_frames(3, b"abc"), 0.0)
    assert_closed_with(conn, 504, "CHANNEL_ERROR - expected 'channel.open'")


def test_any_channel_number_up_to_65535_opens() -> None:
    """RabbitMQ 3.x: channel_max limits how many channels are open, not their numbers."""
    conn, _ = open_connection(tune=(3, 131072, 0))
    for channel in (65535, 4, 2048):
        open_channel(conn, channel)
    assert conn.state == proto.RUNNING
    assert sorted(conn.channels) == [4, 2048, 65535]


def test_content_on_an_unopened_high_channel_number() -> None:
    conn, _ = open_connection(tune=(3, 131072, 0))
    conn.receive_data(content_frames(4000, b"abc"), 0.0)
    assert_closed_with(conn, 504, "CHANNEL_ERROR - expected 'channel.open'")


def test_more_channels_than_channel_max() -> None:
    """RabbitMQ: the count is checked first, 530 with c/m 0/0."""
    conn, _ = open_connection(tune=(3, 131072, 0))
    for channel in (1, 2, 3):
        open_channel(conn, channel)
    conn.receive_data(pamqp_frame(4, commands.Channel.Open()), 0.0)
    assert_closed_with(conn, 530, "NOT_ALLOWED - number of channels opened (3) has reached "
                       "the negotiated channel_max (3)", (0, 0))


def test_closed_channel_frees_a_slot() -> None:
    conn, _ = open_connection(tune=(2, 131072, 0))
    open_channel(conn, 1)
    open_channel(conn, 2)
    conn.receive_data(pamqp_frame(1, commands.Channel.Close(200, "", 0, 0)), 0.0)
    sent(conn)
    open_channel(conn, 1)


def test_server_channel_close_drops_methods_until_close_ok() -> None:
    conn, handler = open_connection()
    open_channel(conn, 1)
    open_channel(conn, 2)
    handler.raise_on[commands.Queue.Declare.index] = errors.queue_not_found("q", "/")
    conn.receive_data(pamqp_frame(1, commands.Queue.Declare(queue="q", passive=True)), 0.0)
    (channel, close), = sent(conn)
    assert channel == 1
    assert isinstance(close, commands.Channel.Close)
    assert (close.reply_code, close.reply_text) == (404, "NOT_FOUND - no queue 'q' in vhost '/'")
    assert (close.class_id, close.method_id) == (50, 10)
    assert handler.named("channel_closed") == [("channel_closed", 1)]
    calls = len(handler.calls)
    # dropped silently: methods, content, even a new Channel.Open
    conn.receive_data(pamqp_frame(1, commands.Basic.Qos(prefetch_count=5))
                      + publish_frames(1, b"dropped")
                      + pamqp_frame(1, commands.Channel.Open()), 0.0)
    assert sent(conn) == []
    assert len(handler.calls) == calls
    assert conn.state == proto.RUNNING
    # the other channel is unaffected
    conn.receive_data(pamqp_frame(2, commands.Basic.Qos(prefetch_count=5)), 0.0)
    assert handler.named("method")[-1][1] == 2
    # after Close-Ok the channel number can be opened again
    conn.receive_data(pamqp_frame(1, commands.Channel.CloseOk()), 0.0)
    assert sent(conn) == []
    open_channel(conn, 1)


def test_server_channel_close_then_client_close_crossing() -> None:
    conn, _ = open_connection()
    open_channel(conn, 1)
    conn.close_channel(1, errors.ChannelError(errors.PRECONDITION_FAILED, "nope", 60, 80))
    (_, close), = sent(conn)
    assert (close.reply_code, close.reply_text) == (406, "PRECONDITION_FAILED - nope")
    conn.receive_data(pamqp_frame(1, commands.Channel.Close(200, "", 0, 0)), 0.0)
    assert [(ch, type(m)) for ch, m in sent(conn)] == [(1, commands.Channel.CloseOk)]
    open_channel(conn, 1)


def test_channel_error_from_the_handler_inside_a_publish() -> None:
    class Refusing(RecordingHandler):
        def on_publish(self, *args: Any) -> None:
            raise errors.exchange_not_found("nope", "/")

    conn, _ = open_connection(handler=Refusing())
    open_channel(conn, 1)
    conn.receive_data(publish_frames(1, b"abc", exchange="nope"), 0.0)
    (channel, close), = sent(conn)
    assert channel == 1
    assert close.reply_code == 404
    assert (close.class_id, close.method_id) == (60, 40)


def test_connection_error_from_the_handler() -> None:
    conn, handler = open_connection()
    open_channel(conn, 1)
    handler.raise_on[commands.Basic.Qos.index] = errors.not_implemented("prefetch_size!=0 (1)")
    conn.receive_data(pamqp_frame(1, commands.Basic.Qos(prefetch_size=1)), 0.0)
    assert_closed_with(conn, 540, "NOT_IMPLEMENTED - prefetch_size!=0 (1)", (60, 10))
    assert handler.named("closed") == [("closed",)]


# --- reply texts longer than a shortstr -----------------------------------------------------


def assert_truncated_like_rabbitmq(text: str, full_prefix: str) -> None:
    """RabbitMQ cuts a reply text over 255 bytes to its first 252 bytes and '...'."""
    data = text.encode("utf-8")
    assert len(data) <= 255
    assert text.endswith("...")
    assert text.startswith(full_prefix)
    assert len(data) >= 252


def test_long_connection_reply_text_is_truncated() -> None:
    """A bad frame-end after a long printable payload makes a 300+ byte FRAME_ERROR text;
    encoding it must not blow up receive_data."""
    conn, handler = open_connection()
    open_channel(conn, 1)
    conn.receive_data(raw_frame(FRAME_BODY, 1, b"A" * 300, end=0), 0.0)
    close = assert_closed_with(conn, 501)
    assert_truncated_like_rabbitmq(close.reply_text, 'FRAME_ERROR - type 3, all octets = <<"AAA')
    assert handler.named("closed") == [("closed",)]


def test_long_channel_reply_text_is_truncated() -> None:
    conn, handler = open_connection()
    open_channel(conn, 1)
    name = "q" * 255
    handler.raise_on[commands.Queue.Declare.index] = errors.queue_not_found(name, "/")
    conn.receive_data(pamqp_frame(1, commands.Queue.Declare(queue=name, passive=True)), 0.0)
    (channel, close), = sent(conn)
    assert channel == 1
    assert isinstance(close, commands.Channel.Close)
    assert close.reply_code == 404
    assert_truncated_like_rabbitmq(close.reply_text, "NOT_FOUND - no queue 'qqq")
    assert handler.named("channel_closed") == [("channel_closed", 1)]
    assert conn.state == proto.RUNNING
