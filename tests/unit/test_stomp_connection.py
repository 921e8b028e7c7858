"""The STOMP connection state machine: CONNECT, versions, heart-beats, deadlines and the
errors it answers by itself."""

from __future__ import annotations

import math

import pytest

from amqpbroker.protocol.stomp.commands import ConnectRequested, Failed, HeartbeatDue
from amqpbroker.protocol.stomp.connection import (
    StompConnection,
    negotiate_heartbeat,
    negotiate_version,
)
from amqpbroker.protocol.stomp.frames import Frame, FrameLimits, FrameParser


def connection() -> StompConnection:
    return StompConnection(FrameLimits(), now=0.0, login_timeout=10.0)


def error_of(command: object) -> Frame:
    assert isinstance(command, Failed)
    [frame] = FrameParser().feed(command.data)
    assert frame.command == "ERROR"
    return frame


@pytest.mark.parametrize(("offered", "chosen"), [
    (None, "1.0"), ("1.0", "1.0"), ("1.0,1.1", "1.1"), ("1.2,1.0", "1.2"),
    ("1.1, 1.2", "1.2"), ("2.0", None), ("", None)])
def test_version_negotiation(offered: str | None, chosen: str | None) -> None:
    assert negotiate_version(offered) == chosen


@pytest.mark.parametrize(("header", "answer"), [
    (None, (0, 0)), ("0,0", (0, 0)), ("0,500", (1000, 0)), ("2500,0", (0, 2000)),
    ("1500,3700", (3000, 1000))])
def test_heartbeat_negotiation_as_rabbitmq(header: str | None, answer: tuple[int, int]) -> None:
    assert negotiate_heartbeat(header) == answer


@pytest.mark.parametrize("header", ["1", "a,b", "-1,0", "1,2,3"])
def test_bad_heartbeat_headers(header: str) -> None:
    with pytest.raises(ValueError):
        negotiate_heartbeat(header)


def test_connect_then_frames_in_the_negotiated_version() -> None:
    conn = connection()
    [command] = conn.receive_data(
        b"CONNECT\naccept-version:1.1\nlogin:u\npasscode:p\nhost:/\nheart-beat:0,2000\n\n\x00",
        1.0)
    assert isinstance(command, ConnectRequested)
    assert (command.version, command.login, command.passcode, command.host) == (
        "1.1", "u", "p", "/")
    reply = conn.accept_connect("session-x", "RabbitMQ/3.13", 1.0, username="u", vhost="/")
    assert reply == (b"CONNECTED\nserver:RabbitMQ/3.13\nsession:session-x\n"
                     b"heart-beat:2000,0\nversion:1.1\n\n\x00")
    [frame] = conn.receive_data(b"SEND\nk:a\\cb\n\n\x00", 1.5)
    assert isinstance(frame, Frame) and frame.headers == {"k": "a:b"}


def test_frames_before_connect_get_an_error_and_a_close() -> None:
    conn = connection()
    [command] = conn.receive_data(b"SEND\nreceipt:r1\n\n\x00SEND\n\n\x00", 0.0)
    error = error_of(command)
    assert error.headers["message"] == "Illegal command"
    assert error.headers["receipt-id"] == "r1"
    assert error.body == b"You must log in using CONNECT first"
    assert conn.closed
    assert list(conn.receive_data(b"SEND\n\n\x00", 0.0)) == []


def test_no_common_version() -> None:
    conn = connection()
    [command] = conn.receive_data(b"CONNECT\naccept-version:9.9\n\n\x00", 0.0)
    error = error_of(command)
    assert error.headers["message"] == "Version mismatch"
    assert error.headers["version"] == "1.0,1.1,1.2"
    assert error.body == b"Supported versions are 1.0,1.1,1.2\n"


def opened(heartbeat: str = "0,0") -> StompConnection:
    conn = connection()
    list(conn.receive_data(
        f"STOMP\naccept-version:1.2\nheart-beat:{heartbeat}\n\n\x00".encode(), 0.0))
    conn.accept_connect("s", "x", 0.0, username="guest", vhost="/")
    return conn


def test_unknown_commands_and_a_second_connect_are_errors() -> None:
    for data in (b"FLY\n\n\x00", b"CONNECT\n\n\x00", b"MESSAGE\n\n\x00"):
        conn = opened()
        [command] = conn.receive_data(data, 1.0)
        assert error_of(command).headers["message"] == "Bad command"
        assert conn.closed


def test_a_malformed_frame_ends_the_connection() -> None:
    conn = opened()
    commands = list(conn.receive_data(b"SEND\n\n\x00SEND\nk:\\t\n\n\x00SEND\n\n\x00", 1.0))
    assert isinstance(commands[0], Frame)
    assert error_of(commands[1]).headers["message"] == "Bad header"
    assert len(commands) == 2 and conn.closed


def test_heartbeats_are_sent_at_half_the_interval_and_silence_ends_it() -> None:
    conn = opened("1000,1000")
    assert conn.next_deadline() == 0.5
    assert conn.tick(0.4) is None
    assert isinstance(conn.tick(0.5), HeartbeatDue)
    conn.data_sent(0.9)
    assert conn.next_deadline() == 1.4
    list(conn.receive_data(b"\n", 2.0))
    assert conn.parser.heartbeats == 1
    conn.data_sent(4.9)
    assert conn.tick(4.9) is None
    assert isinstance(conn.tick(5.0), Failed) and conn.closed
    assert conn.next_deadline() == math.inf


def test_the_login_deadline() -> None:
    conn = connection()
    assert conn.next_deadline() == 10.0
    assert conn.tick(9.0) is None
    command = conn.tick(10.0)
    assert isinstance(command, Failed) and command.data == b"" and conn.closed


def test_fail_once() -> None:
    conn = opened()
    assert conn.fail("not_found", "NOT_FOUND - x").startswith(b"ERROR\nmessage:not_found\n")
    assert conn.fail("again", "x") == b""
