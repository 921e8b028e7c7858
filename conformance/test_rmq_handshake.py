"""§1 handshake: protocol header, Connection.Start, Tune, authentication and vhost."""

from __future__ import annotations

import struct

import pytest
from amqp_conformance import (
    PROTOCOL_HEADER,
    Client,
    Connect,
    Connection,
    method_frame,
    raw_frame,
)

from amqpbroker.testing import broker_in_thread


@pytest.mark.parametrize("header", [
    b"AMQP\x00\x00\x09\x00",
    b"AMQP\x00\x00\x08\x00",
    b"AMQP\x00\x01\x00\x00",
    b"AMQP\x03\x01\x00\x00",
    b"AMQP\x01\x01\x00\x0a",
    b"AMQX\x00\x00\x09\x01",
    b"GET / HTTP/1.1\r\n\r\n",
], ids=["0-9-0", "0-8-0", "amqp1.0", "amqp1.0-sasl", "0-10", "AMQX", "http"])
def test_bad_protocol_header_answered_with_ours_then_closed(connect: Connect,
                                                            header: bytes) -> None:
    client = connect(handshake=False)
    client.send(header)
    assert client.read_bytes(8) == PROTOCOL_HEADER
    assert client.read_bytes(1, timeout=2.0) == b"", "the server must close after the header"


@pytest.mark.parametrize(("header", "version"), [
    (PROTOCOL_HEADER, (0, 9)),
    (b"AMQP\x01\x01\x00\x09", (0, 9)),
    (b"AMQP\x01\x01\x08\x00", (8, 0)),
    (b"AMQP\x01\x01\x09\x01", (8, 0)),
], ids=["0-9-1", "legacy-0-9", "legacy-8-0", "legacy-9-1"])
def test_accepted_protocol_headers(connect: Connect, header: bytes,
                                   version: tuple[int, int]) -> None:
    client = connect(handshake=False)
    start = client.send_header(header)
    assert (start.version_major, start.version_minor) == version


def test_connection_start_fields(connect: Connect) -> None:
    start = connect(handshake=False).send_header()
    assert (start.version_major, start.version_minor) == (0, 9)
    assert start.mechanisms == "PLAIN AMQPLAIN"
    assert start.locales == "en_US"
    props = start.server_properties
    assert set(props) >= {"product", "version", "platform", "copyright", "information",
                          "cluster_name", "capabilities"}
    for key in ("product", "version", "platform", "copyright", "information", "cluster_name"):
        assert isinstance(props[key], str | bytes), key


def test_connection_start_capabilities(connect: Connect) -> None:
    caps = connect(handshake=False).send_header().server_properties["capabilities"]
    expected = {"publisher_confirms", "exchange_exchange_bindings", "basic.nack",
                "consumer_cancel_notify", "connection.blocked", "consumer_priorities",
                "authentication_failure_close", "per_consumer_qos", "direct_reply_to"}
    assert set(caps) >= expected
    assert {key: type(caps[key]) for key in expected} == {key: bool for key in expected}


def test_tune_values(connect: Connect) -> None:
    client = connect(handshake=False)
    client.send_header()
    client.start_ok()
    tune = client.wait(0, Connection.Tune)
    assert (tune.channel_max, tune.frame_max, tune.heartbeat) == (2047, 131072, 60)


def test_full_handshake_and_usable(connect: Connect) -> None:
    connect().assert_usable()


@pytest.mark.parametrize(("mechanism", "user", "password"), [
    ("PLAIN", "guest", "wrong"),
    ("PLAIN", "nobody", "guest"),
    ("AMQPLAIN", "guest", "wrong"),
])
def test_bad_credentials_refused(connect: Connect, mechanism: str, user: str,
                                 password: str) -> None:
    client = connect(handshake=False)
    client.send_header()
    client.start_ok(user=user, password=password, mechanism=mechanism)
    client.expect_connection_close(
        403, f"ACCESS_REFUSED - Login was refused using authentication mechanism {mechanism}. "
             "For details see the broker logfile.", 0, 0)


def test_amqplain_login_works(connect: Connect) -> None:
    connect(mechanism="AMQPLAIN").assert_usable()


@pytest.mark.parametrize(("mechanism", "response"), [
    ("EXTERNAL", b""),
    ("plain", b"\0guest\0guest"),
    ("PLAIN", b"guest\0guest"),
    ("PLAIN", b"authz\0guest\0guest"),
])
def test_unusable_auth_dropped_without_tune(connect: Connect, mechanism: str,
                                            response: bytes) -> None:
    client = connect(handshake=False)
    client.send_header()
    client.start_ok(mechanism=mechanism, response=response)
    client.expect_disconnect(allow_close=False)


def test_bad_password_without_capability_dropped(connect: Connect) -> None:
    client = connect(handshake=False)
    client.send_header()
    client.start_ok(password="wrong", capabilities={})
    client.expect_disconnect(allow_close=False)


def test_unknown_vhost(connect: Connect) -> None:
    client = connect(handshake=False)
    client.send_header()
    client.start_ok()
    client.tune_ok()
    client.open("nope")
    client.expect_connection_close(530, "NOT_ALLOWED - vhost nope not found", 10, 40)


@pytest.mark.parametrize(("channel_max", "frame_max"), [
    (None, 4095), (None, 131073), (2048, None),
], ids=["frame_max-4095", "frame_max-131073", "channel_max-2048"])
def test_bad_tune_ok_fails_handshake(connect: Connect, channel_max: int | None,
                                     frame_max: int | None) -> None:
    client = connect(handshake=False)
    client.send_header()
    client.start_ok()
    client.tune_ok(channel_max=channel_max, frame_max=frame_max)
    client.open()
    client.expect_disconnect(allow_close=True)


# 0 means "no limit of mine" (spec: lower non-zero wins), so ours applies.
# RabbitMQ 3.10 fails the handshake instead.
@pytest.mark.parametrize(("channel_max", "frame_max"), [(1, 4096), (2047, 131072), (10, 8192),
                                                        (0, 131072), (2047, 0)])
def test_good_tune_ok_accepted(connect: Connect, channel_max: int, frame_max: int) -> None:
    connect(channel_max=channel_max, frame_max=frame_max).assert_usable()


def test_pre_auth_frame_over_4096_bytes_closes(connect: Connect) -> None:
    client = connect(handshake=False)
    client.send_header()
    props = b"\x00" * 4100
    client.send(method_frame(0, 10, 11, struct.pack(">I", len(props)) + props))
    client.expect_disconnect(allow_close=True)


def test_pre_auth_frame_header_declaring_4gib_closes(connect: Connect) -> None:
    client = connect(handshake=False)
    client.send_header()
    client.send(struct.pack(">BHI", 1, 0, 0xFFFFFFF0) + b"\x00\x0a\x00\x0b")
    client.expect_disconnect(allow_close=True)


@pytest.mark.parametrize("data", [
    b"garbage!garbage!",
    method_frame(0, 10, 40, b"\x01/\x00\x00"),
    raw_frame(1, 1, b"\x00\x14\x00\x0a\x00"),
], ids=["garbage", "open-before-start-ok", "channel-frame-before-start-ok"])
def test_other_handshake_errors_close(connect: Connect, data: bytes) -> None:
    client = connect(handshake=False)
    client.send_header()
    client.send(data)
    client.expect_disconnect(allow_close=True)


def test_short_header_then_silence_dropped_at_handshake_timeout() -> None:
    with broker_in_thread(handshake_timeout=0.3) as quick:
        client = Client(quick.host, quick.port)
        try:
            client.send(b"AMQ")
            client.expect_disconnect(allow_close=False, timeout=3.0)
        finally:
            client.close()

