"""Raw-socket AMQP client against the broker: heartbeats, silent-peer timeout, frame splitting."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator

import pytest
from pamqp import body as pamqp_body
from pamqp import commands, header
from pamqp.heartbeat import Heartbeat
from support.client import RawConnection

from amqpbroker.testing import EmbeddedBroker, broker_in_thread, wait_for

pytestmark = pytest.mark.timeout(30)

HEARTBEAT = 1
DROP_DEADLINE = 6.0


@pytest.fixture
def heartbeat_broker() -> Iterator[EmbeddedBroker]:
    with broker_in_thread(heartbeat=HEARTBEAT) as broker:
        yield broker


@pytest.fixture
def raw(heartbeat_broker: EmbeddedBroker) -> Iterator[RawConnection]:
    client = RawConnection(heartbeat_broker.host, heartbeat_broker.port)
    try:
        yield client
    finally:
        client.close()


def test_server_offers_configured_heartbeat(raw: RawConnection):
    tune = raw.handshake(heartbeat=HEARTBEAT)
    assert tune.heartbeat == HEARTBEAT
    raw.send_method(commands.Connection.Close(200, "bye", 0, 0))
    raw.expect(commands.Connection.CloseOk)


def test_silent_client_gets_heartbeats_then_is_dropped(raw: RawConnection):
    raw.handshake(heartbeat=HEARTBEAT)
    started = time.monotonic()
    heartbeats = 0
    others = []
    while True:
        remaining = started + DROP_DEADLINE - time.monotonic()
        assert remaining > 0, (
            f"still connected {DROP_DEADLINE}s after going silent "
            f"(heartbeat {HEARTBEAT}s, {heartbeats} heartbeats received)")
        try:
            received = raw.receive(timeout=remaining)
        except TimeoutError:
            continue
        if received is None:
            break
        _, value, _ = received
        if isinstance(value, Heartbeat):
            heartbeats += 1
        else:
            others.append(value)
    elapsed = time.monotonic() - started
    assert heartbeats >= 2, f"only {heartbeats} heartbeats before the drop at {elapsed:.2f}s"
    assert elapsed >= HEARTBEAT, f"dropped after only {elapsed:.2f}s"
    # RabbitMQ drops a silent peer without a Connection.Close.
    assert others == []


def test_client_sending_heartbeats_stays_connected(raw: RawConnection):
    raw.handshake(heartbeat=HEARTBEAT)
    started = time.monotonic()
    stay = 4.5
    next_beat = started
    while (now := time.monotonic()) < started + stay:
        if now >= next_beat:
            raw.send_heartbeat()
            next_beat = now + HEARTBEAT / 4
        try:
            received = raw.receive(timeout=max(next_beat - time.monotonic(), 0.001))
        except TimeoutError:
            continue
        assert received is not None, (
            f"server dropped the connection after {time.monotonic() - started:.2f}s "
            "although the client kept sending heartbeats")
        _, value, _ = received
        assert isinstance(value, Heartbeat), f"unexpected frame {value!r}"
    # Still fully usable.
    raw.send_method(commands.Channel.Open(), channel=1)
    raw.expect(commands.Channel.OpenOk)
    raw.send_method(commands.Connection.Close(200, "bye", 0, 0))
    raw.expect(commands.Connection.CloseOk)


def test_abrupt_disconnect_requeues_and_drops_exclusive_queues(amqp_broker: EmbeddedBroker):
    client = RawConnection(amqp_broker.host, amqp_broker.port)
    observer = RawConnection(amqp_broker.host, amqp_broker.port)
    try:
        client.handshake()
        observer.handshake()
        for raw in (client, observer):
            raw.send_method(commands.Channel.Open(), channel=1)
            raw.expect(commands.Channel.OpenOk)
        client.send_method(commands.Queue.Declare(queue="raw.excl", exclusive=True), channel=1)
        client.expect(commands.Queue.DeclareOk)
        client.send_method(commands.Queue.Declare(queue="raw.shared"), channel=1)
        client.expect(commands.Queue.DeclareOk)
        for text in (b"a", b"b"):
            client.send_method(commands.Basic.Publish(exchange="", routing_key="raw.shared"),
                        channel=1)
            client.send_method(header.ContentHeader(0, 1, commands.Basic.Properties()), channel=1)
            client.send_method(pamqp_body.ContentBody(text), channel=1)
        client.send_method(commands.Basic.Get(queue="raw.shared"), channel=1)
        assert not client.expect(commands.Basic.GetOk).redelivered
        client.expect(header.ContentHeader)
        assert client.expect(pamqp_body.ContentBody).value == b"a"
        client.close()  # no Close, no Close-Ok: the TCP connection just goes away

        def declare(queue: str) -> commands.Queue.DeclareOk | commands.Channel.Close:
            observer.send_method(commands.Queue.Declare(queue=queue, passive=True), channel=1)
            received = observer.receive()
            assert received is not None
            reply = received[1]
            if isinstance(reply, commands.Channel.Close):
                observer.send_method(commands.Channel.CloseOk(), channel=1)
                observer.send_method(commands.Channel.Open(), channel=1)
                observer.expect(commands.Channel.OpenOk)
            return reply

        def exclusive_gone() -> bool:
            reply = declare("raw.excl")  # 405 while it still exists, 404 once it is gone
            return isinstance(reply, commands.Channel.Close) and reply.reply_code == 404

        wait_for(exclusive_gone, what="the exclusive queue of the dropped connection to go")
        shared = declare("raw.shared")
        assert isinstance(shared, commands.Queue.DeclareOk)
        assert shared.message_count == 2  # the unacked "a" is back
        observer.send_method(commands.Basic.Get(queue="raw.shared", no_ack=True), channel=1)
        get_ok = observer.expect(commands.Basic.GetOk)
        assert get_ok.redelivered
        observer.expect(header.ContentHeader)
        assert observer.expect(pamqp_body.ContentBody).value == b"a"
        observer.send_method(commands.Connection.Close(200, "bye", 0, 0))
        observer.expect(commands.Connection.CloseOk)
    finally:
        client.close()
        observer.close()


@pytest.mark.parametrize("frame_max,size", [(4096, 20_000), (131072, 1024 * 1024)])
def test_large_body_split_into_frames_within_frame_max(amqp_broker: EmbeddedBroker,
                                                        frame_max: int, size: int):
    client = RawConnection(amqp_broker.host, amqp_broker.port)
    try:
        client.handshake(frame_max=frame_max)
        client.send_method(commands.Channel.Open(), channel=1)
        client.expect(commands.Channel.OpenOk)
        client.send_method(commands.Queue.Declare(queue="raw.large"), channel=1)
        client.expect(commands.Queue.DeclareOk)
        payload = os.urandom(size)
        limit = frame_max - 8
        client.send_method(commands.Basic.Publish(exchange="", routing_key="raw.large"), channel=1)
        client.send_method(header.ContentHeader(0, size, commands.Basic.Properties()), channel=1)
        for offset in range(0, size, limit):
            client.send_method(pamqp_body.ContentBody(payload[offset:offset + limit]), channel=1)

        client.send_method(commands.Basic.Get(queue="raw.large", no_ack=True), channel=1)
        client.expect(commands.Basic.GetOk)
        content = client.expect(header.ContentHeader)
        assert content.body_size == size
        chunks = []
        sizes = []
        while sum(sizes) < size:
            received = client.receive()
            assert received is not None
            channel, value, frame_size = received
            assert channel == 1
            assert isinstance(value, pamqp_body.ContentBody)
            chunks.append(value.value)
            sizes.append(frame_size)
        assert b"".join(chunks) == payload
        assert max(sizes) <= limit, f"a body frame of {max(sizes)} bytes > {limit}"
        assert len(sizes) == math.ceil(size / limit)
        client.send_method(commands.Connection.Close(200, "bye", 0, 0))
        client.expect(commands.Connection.CloseOk)
    finally:
        client.close()
