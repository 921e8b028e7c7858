"""Resource alarms and connection.blocked: publishers are held while an alarm is raised and
told so (Connection.Blocked / Unblocked) when they announce the capability; the server's
capabilities in Connection.Start."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import aio_pika
import pika
import pytest
from integration_support import DEFAULT_TIMEOUT, async_wait_for
from pamqp import body as pamqp_body
from pamqp import commands, frame, header
from pamqp.commands import Basic
from support.client import RawConnection

from amqpbroker.testing import EmbeddedBroker, broker_in_thread, wait_for

pytestmark = pytest.mark.timeout(20)

CAPABILITIES = ["publisher_confirms", "exchange_exchange_bindings", "basic.nack",
                "consumer_cancel_notify", "connection.blocked", "consumer_priorities",
                "authentication_failure_close", "per_consumer_qos", "direct_reply_to"]
MEMORY_REASON = "low on memory"
HOLD_WINDOW = 0.3  # how long "nothing happens" is watched for


@pytest.fixture
def broker() -> Iterator[EmbeddedBroker]:
    """A broker whose memory sampler is off, so that only the test raises and clears the
    memory alarm (with the default watermark the sampler would clear it within 1 s)."""
    with broker_in_thread(memory_high_watermark=0) as embedded:
        try:
            yield embedded
        finally:
            set_alarm(embedded, False)


def set_alarm(broker: EmbeddedBroker, active: bool) -> None:
    broker.call(broker.server.broker.set_alarm, "memory", active)


def assert_stays(predicate: Callable[[], bool], what: str,
                 duration: float = HOLD_WINDOW) -> None:
    """`predicate` holds throughout `duration` seconds (checked repeatedly)."""
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        assert predicate(), what
        time.sleep(0.02)


# --- raw client helpers ----------------------------------------------------------------


def raw_handshake(raw: RawConnection,
                  capabilities: dict[str, Any] | None) -> commands.Connection.Start:
    raw.sock.sendall(b"AMQP\x00\x00\x09\x01")
    start = raw.expect(commands.Connection.Start)
    properties: dict[str, Any] = {"product": "raw-blocked-test"}
    if capabilities is not None:
        properties["capabilities"] = capabilities
    raw.send_method(commands.Connection.StartOk(client_properties=properties, mechanism="PLAIN",
                                         response="\x00guest\x00guest", locale="en_US"))
    tune = raw.expect(commands.Connection.Tune)
    raw.send_method(commands.Connection.TuneOk(channel_max=tune.channel_max,
                                        frame_max=tune.frame_max, heartbeat=0))
    raw.send_method(commands.Connection.Open(virtual_host="/"))
    raw.expect(commands.Connection.OpenOk)
    raw.send_method(commands.Channel.Open(), channel=1)
    raw.expect(commands.Channel.OpenOk)
    return start


def raw_publish(raw: RawConnection, routing_key: str, data: bytes) -> None:
    """Method, header and body frames in one write, as client libraries send them."""
    raw.sock.sendall(b"".join(frame.marshal(value, 1) for value in (
        commands.Basic.Publish(exchange="", routing_key=routing_key),
        header.ContentHeader(0, len(data), commands.Basic.Properties()),
        pamqp_body.ContentBody(data))))


def raw_declare(raw: RawConnection, queue: str, passive: bool = False) -> commands.Queue.DeclareOk:
    raw.send_method(commands.Queue.Declare(queue=queue, passive=passive), channel=1)
    return raw.expect(commands.Queue.DeclareOk)


@pytest.fixture
def raw_clients(broker: EmbeddedBroker) -> Iterator[Callable[[], RawConnection]]:
    opened: list[RawConnection] = []
    # (The alarm is cleared by the `broker` fixture, after these sockets are closed.)

    def open_client() -> RawConnection:
        client = RawConnection(broker.host, broker.port)
        opened.append(client)
        return client

    try:
        yield open_client
    finally:
        for client in opened:
            client.close()


# --- capabilities ----------------------------------------------------------------------


def test_server_announces_all_nine_capabilities(amqp_broker: EmbeddedBroker):
    raw = RawConnection(amqp_broker.host, amqp_broker.port)
    try:
        raw.sock.sendall(b"AMQP\x00\x00\x09\x01")
        start = raw.expect(commands.Connection.Start)
    finally:
        raw.close()
    capabilities = start.server_properties["capabilities"]
    # A field table is a map: compare contents (RabbitMQ sends them in CAPABILITIES order).
    assert capabilities == dict.fromkeys(CAPABILITIES, True)


# --- raw clients -----------------------------------------------------------------------


def test_raw_publisher_is_blocked_held_and_unblocked(broker: EmbeddedBroker, raw_clients):
    publisher, observer = raw_clients(), raw_clients()
    raw_handshake(publisher, {"connection.blocked": True})
    raw_handshake(observer, None)
    raw_declare(observer, "blk.raw")
    raw_publish(publisher, "blk.raw", b"before")
    # A synchronous round trip: the publish above has been handled.
    assert raw_declare(publisher, "blk.raw", passive=True).message_count == 1

    set_alarm(broker, True)
    raw_publish(publisher, "blk.raw", b"held-1")
    raw_publish(publisher, "blk.raw", b"held-2")
    blocked = publisher.expect(commands.Connection.Blocked)
    assert blocked.reason == MEMORY_REASON
    # The observer never published: it is not blocked, and sees nothing new enqueued.
    assert_stays(lambda: raw_declare(observer, "blk.raw", passive=True).message_count == 1,
                 "a publish was enqueued while the memory alarm was raised")

    set_alarm(broker, False)
    publisher.expect(commands.Connection.Unblocked)
    wait_for(lambda: raw_declare(observer, "blk.raw", passive=True).message_count == 3,
             what="the held publishes to land")
    got = []
    for _ in range(3):
        observer.send_method(commands.Basic.Get(queue="blk.raw", no_ack=True), channel=1)
        observer.expect(commands.Basic.GetOk)
        observer.expect(header.ContentHeader)
        got.append(observer.expect(pamqp_body.ContentBody).value)
    assert got == [b"before", b"held-1", b"held-2"]
    # Blocked and Unblocked came once each: the next frame is the reply to this Qos.
    publisher.send_method(commands.Basic.Qos(prefetch_count=1), channel=1)
    publisher.expect(commands.Basic.QosOk)


def test_first_publish_after_the_alarm_is_held_too(broker: EmbeddedBroker, raw_clients):
    """RabbitMQ blocks a connection on its first publish under an alarm, before it reads
    that message's content: a publisher that never published before is held as well."""
    observer = raw_clients()
    raw_handshake(observer, None)
    raw_declare(observer, "blk.first")
    set_alarm(broker, True)
    publisher = raw_clients()
    raw_handshake(publisher, {"connection.blocked": True})
    raw_publish(publisher, "blk.first", b"held")
    blocked = publisher.expect(commands.Connection.Blocked)
    assert blocked.reason == MEMORY_REASON
    assert_stays(lambda: raw_declare(observer, "blk.first", passive=True).message_count == 0,
                 "the first publish after the alarm was enqueued")
    set_alarm(broker, False)
    publisher.expect(commands.Connection.Unblocked)
    wait_for(lambda: raw_declare(observer, "blk.first", passive=True).message_count == 1,
             what="the held publish to land")


def test_raw_publisher_without_the_capability_is_held_silently(broker: EmbeddedBroker,
                                                               raw_clients):
    publisher, observer = raw_clients(), raw_clients()
    raw_handshake(publisher, None)
    raw_handshake(observer, None)
    raw_declare(observer, "blk.silent")
    raw_publish(publisher, "blk.silent", b"before")
    assert raw_declare(publisher, "blk.silent", passive=True).message_count == 1

    set_alarm(broker, True)
    raw_publish(publisher, "blk.silent", b"held")
    assert_stays(lambda: raw_declare(observer, "blk.silent", passive=True).message_count == 1,
                 "a publish was enqueued while the memory alarm was raised")
    set_alarm(broker, False)
    wait_for(lambda: raw_declare(observer, "blk.silent", passive=True).message_count == 2,
             what="the held publish to land")
    # No Blocked / Unblocked for a client that did not ask: next comes the Qos reply.
    publisher.send_method(commands.Basic.Qos(prefetch_count=1), channel=1)
    publisher.expect(commands.Basic.QosOk)


# --- pika ------------------------------------------------------------------------------


def pika_connection(broker: EmbeddedBroker) -> pika.BlockingConnection:
    params = pika.URLParameters(broker.url)
    params.socket_timeout = 5
    params.stack_timeout = 5
    params.blocked_connection_timeout = 10
    return pika.BlockingConnection(params)


def test_pika_publisher_gets_blocked_and_unblocked(broker: EmbeddedBroker):
    publisher = pika_connection(broker)
    observer = pika_connection(broker)
    try:
        events: list[str] = []
        observer_events: list[str] = []
        publisher.add_on_connection_blocked_callback(
            lambda _conn, frame: events.append(f"blocked:{frame.method.reason}"))
        publisher.add_on_connection_unblocked_callback(
            lambda _conn, _frame: events.append("unblocked"))
        observer.add_on_connection_blocked_callback(
            lambda _conn, _frame: observer_events.append("blocked"))
        publish_channel = publisher.channel()
        observe_channel = observer.channel()
        observe_channel.queue_declare("blk.pika")

        def ready() -> int:
            return observe_channel.queue_declare("blk.pika", passive=True).method.message_count

        def publisher_saw(count: int) -> bool:
            publisher.process_data_events(time_limit=0)
            return len(events) >= count

        publish_channel.basic_publish("", "blk.pika", b"before")
        wait_for(lambda: ready() == 1, what="the first publish")

        set_alarm(broker, True)
        for text in (b"held-1", b"held-2", b"held-3"):
            publish_channel.basic_publish("", "blk.pika", text)
        wait_for(lambda: publisher_saw(1), what="Connection.Blocked")
        assert events == [f"blocked:{MEMORY_REASON}"]
        assert_stays(lambda: ready() == 1,
                     "a publish was enqueued while the memory alarm was raised")

        set_alarm(broker, False)
        wait_for(lambda: publisher_saw(2), what="Connection.Unblocked")
        assert events == [f"blocked:{MEMORY_REASON}", "unblocked"]
        wait_for(lambda: ready() == 4, what="the held publishes to land")
        bodies = []
        while (got := observe_channel.basic_get("blk.pika", auto_ack=True))[0] is not None:
            bodies.append(got[2])
        assert bodies == [b"before", b"held-1", b"held-2", b"held-3"]
        observer.process_data_events(time_limit=0)
        assert observer_events == []
        # The publisher works normally again.
        publish_channel.basic_publish("", "blk.pika", b"after")
        wait_for(lambda: ready() == 1, what="a publish after the alarm")
    finally:
        set_alarm(broker, False)  # else closing a held connection waits for a timeout
        for conn in (publisher, observer):
            if conn.is_open:
                conn.close()


# --- aio-pika --------------------------------------------------------------------------


def aiormq_records(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records
            if r.name.startswith("aiormq") and text in r.getMessage()]


async def test_aiopika_publisher_confirms_wait_for_the_alarm_to_clear(
        broker: EmbeddedBroker, caplog: pytest.LogCaptureFixture):
    """aio-pika (aiormq 7) has no public blocked callback: it logs Connection.Blocked and
    Unblocked as warnings, and `ready()` of its transport waits while blocked."""
    caplog.set_level(logging.WARNING, logger="aiormq")
    publisher = await aio_pika.connect(broker.url, timeout=DEFAULT_TIMEOUT)
    observer = await aio_pika.connect(broker.url, timeout=DEFAULT_TIMEOUT)
    try:
        channel = await publisher.channel()
        observe = await observer.channel()
        await observe.declare_queue("blk.aio")

        async def ready_count() -> int:
            underlay = await observe.get_underlay_channel()
            return (await underlay.queue_declare("blk.aio", passive=True)).message_count

        confirm = await channel.default_exchange.publish(aio_pika.Message(b"before"),
                                                         routing_key="blk.aio")
        assert isinstance(confirm, Basic.Ack)

        await asyncio.to_thread(set_alarm, broker, True)
        pending = asyncio.ensure_future(channel.default_exchange.publish(
            aio_pika.Message(b"held"), routing_key="blk.aio"))
        await async_wait_for(lambda: aiormq_records(caplog, "was blocked by"),
                             what="Connection.Blocked")
        assert MEMORY_REASON in aiormq_records(caplog, "was blocked by")[0].getMessage()
        transport_ready = asyncio.ensure_future(publisher.transport.connection.ready())
        deadline = time.monotonic() + HOLD_WINDOW
        while time.monotonic() < deadline:
            assert await ready_count() == 1, "a publish was enqueued under the alarm"
            assert not pending.done(), "a publish was confirmed under the alarm"
            await asyncio.sleep(0.02)
        assert not transport_ready.done()

        await asyncio.to_thread(set_alarm, broker, False)
        assert isinstance(await asyncio.wait_for(pending, DEFAULT_TIMEOUT), Basic.Ack)
        await asyncio.wait_for(transport_ready, DEFAULT_TIMEOUT)
        assert aiormq_records(caplog, "was unblocked")
        assert await ready_count() == 2
    finally:
        await asyncio.to_thread(set_alarm, broker, False)
        for connection in (publisher, observer):
            if not connection.is_closed:
                await asyncio.wait_for(connection.close(), DEFAULT_TIMEOUT)
