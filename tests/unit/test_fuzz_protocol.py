"""Property tests: hostile bytes never raise out of parse_frames or Connection.receive_data."""

from __future__ import annotations

import struct
from typing import Any

from helpers import (
    Driven,
    RecordingHandler,
    limits,
    open_channel,
    open_connection,
    owned_connection,
    pamqp_frame,
    publish_frames,
    raw_frame,
    read_frames,
)
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from pamqp import commands
from support.wire import header_frame

from amqpbroker import errors
from amqpbroker.broker.broker import Broker
from amqpbroker.protocol.amqp import connection as proto
from amqpbroker.protocol.amqp.framing import parse_frames
from amqpbroker.protocol.amqp.spec import HEARTBEAT_FRAME, PROTOCOL_HEADER
from amqpbroker.transport.bridge import ClientConnection

# Deterministic (derandomized, no example database); no "explain" phase, to stay fast
# even when a property fails.
FUZZ = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                phases=[Phase.explicit, Phase.generate, Phase.shrink],
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FRAME_MAX = 4096

# Whole, valid commands a client might send, to get the fuzzer past the trivial errors.
VALID = [
    pamqp_frame(1, commands.Channel.Open()),
    pamqp_frame(2, commands.Channel.Open()),
    pamqp_frame(1, commands.Channel.Close(200, "", 0, 0)),
    pamqp_frame(1, commands.Channel.CloseOk()),
    pamqp_frame(1, commands.Channel.Flow(active=True)),
    pamqp_frame(1, commands.Queue.Declare(queue="q")),
    pamqp_frame(1, commands.Queue.Declare(queue="", exclusive=True)),
    pamqp_frame(1, commands.Queue.Declare(queue="q", passive=True)),
    pamqp_frame(1, commands.Queue.Bind(queue="q", exchange="amq.headers",
                                        arguments={"x-match": "any", "a": 1})),
    pamqp_frame(1, commands.Queue.Bind(queue="q", exchange="amq.topic", routing_key="#")),
    pamqp_frame(1, commands.Queue.Unbind(queue="q", exchange="amq.topic", routing_key="#")),
    pamqp_frame(1, commands.Queue.Purge(queue="q")),
    pamqp_frame(1, commands.Queue.Delete(queue="q")),
    pamqp_frame(1, commands.Exchange.Declare(exchange="x", exchange_type="fanout",
                                              auto_delete=True,
                                              arguments={"alternate-exchange": "amq.topic"})),
    pamqp_frame(1, commands.Exchange.Bind(destination="x", source="amq.fanout")),
    pamqp_frame(1, commands.Exchange.Bind(destination="amq.fanout", source="x")),
    pamqp_frame(1, commands.Exchange.Delete(exchange="x")),
    pamqp_frame(1, commands.Basic.Qos(prefetch_count=2)),
    pamqp_frame(1, commands.Basic.Qos(prefetch_count=1, global_=True)),
    pamqp_frame(1, commands.Basic.Consume(queue="q", consumer_tag="c")),
    pamqp_frame(1, commands.Basic.Consume(queue="q", consumer_tag="n", no_ack=True)),
    pamqp_frame(1, commands.Basic.Cancel(consumer_tag="c")),
    pamqp_frame(1, commands.Basic.Get(queue="q")),
    pamqp_frame(1, commands.Basic.Ack(delivery_tag=1)),
    pamqp_frame(1, commands.Basic.Ack(delivery_tag=0, multiple=True)),
    pamqp_frame(1, commands.Basic.Nack(delivery_tag=0, multiple=True, requeue=True)),
    pamqp_frame(1, commands.Basic.Reject(delivery_tag=1, requeue=True)),
    pamqp_frame(1, commands.Basic.Recover(requeue=True)),
    pamqp_frame(1, commands.Confirm.Select()),
    pamqp_frame(1, commands.Tx.Select()),
    pamqp_frame(1, commands.Tx.Commit()),
    pamqp_frame(1, commands.Tx.Rollback()),
    pamqp_frame(0, commands.Connection.UpdateSecret(new_secret="guest", reason="r")),
    publish_frames(1, b"hello", routing_key="q"),
    publish_frames(1, b"x" * 5000, exchange="amq.fanout", frame_max=FRAME_MAX),
    publish_frames(1, b"", exchange="amq.topic", routing_key="a.b"),
    publish_frames(1, b"h", exchange="amq.headers",
                   properties=commands.Basic.Properties(headers={"a": 1}, priority=3,
                                                        expiration="100")),
    HEARTBEAT_FRAME,
]
INDEXES = sorted(commands.INDEX_MAPPING)
PROPERTY_FLAGS = [0, 0x2000, 0x1000, 0x0800, 0x0100, 0x3900, 0xFFFE, 0xFFFF]


def _method_with_junk(index: int, channel: int, junk: bytes) -> bytes:
    return raw_frame(1, channel, struct.pack(">I", index) + junk)


def _header_with_junk(channel: int, size: int, flags: int, junk: bytes) -> bytes:
    return raw_frame(2, channel, struct.pack(">HHQH", 60, 0, size, flags) + junk)


def _publish_with_junk_header(exchange: str, flags: int, junk: bytes, data: bytes) -> bytes:
    head = struct.pack(">HHQH", 60, 0, len(data), flags) + junk
    frames = pamqp_frame(1, commands.Basic.Publish(exchange=exchange, routing_key="q"))
    frames += raw_frame(2, 1, head)
    if data:
        frames += raw_frame(3, 1, data)
    return frames


def _publish_with_table(exchange: str, table: bytes) -> bytes:
    """A publish whose headers table has a plausible length and arbitrary content."""
    return _publish_with_junk_header(exchange, 0x2000, struct.pack(">I", len(table)) + table,
                                     b"b")


channels = st.sampled_from([0, 1, 1, 1, 2, 3, 65535])
junk = st.binary(max_size=48)
frame_types = st.sampled_from([1, 2, 3, 8, 0, 9, 206])
valid = st.sampled_from(VALID)
garbage = st.one_of(
    st.binary(max_size=32),
    st.builds(raw_frame, frame_types, channels, junk),
    st.builds(raw_frame, frame_types, channels, st.binary(min_size=40, max_size=300),
              st.integers(0, 255)),
    st.builds(_publish_with_table, st.sampled_from(["amq.headers", "amq.match"]),
              st.binary(max_size=24)),
    st.builds(_method_with_junk, st.sampled_from(INDEXES), channels, junk),
    st.builds(_header_with_junk, channels, st.integers(0, 64),
              st.sampled_from(PROPERTY_FLAGS), junk),
    st.builds(_publish_with_junk_header, st.sampled_from(["", "amq.headers", "amq.topic"]),
              st.sampled_from(PROPERTY_FLAGS), junk, st.binary(max_size=8)),
)


def weighted(common: st.SearchStrategy[bytes], rare: st.SearchStrategy[bytes],
             one_in: int) -> st.SearchStrategy[bytes]:
    """`rare` once in `one_in` draws (one_of would not do: equal branches are merged)."""
    return st.integers(0, one_in - 1).flatmap(lambda i: rare if i == 0 else common)


# mostly valid commands, so that the broker gets somewhere before the garbage hits
pieces = weighted(valid, garbage, 3)
streams = st.lists(pieces, max_size=24).map(b"".join)
# Valid commands only (and publishes with odd headers tables), to reach deep broker states:
# consumers, unacked deliveries, transactions, confirms, auto-delete, exclusive queues.
SETUP = b"".join([
    pamqp_frame(1, commands.Queue.Declare(queue="q")),
    pamqp_frame(1, commands.Queue.Bind(queue="q", exchange="amq.fanout")),
    pamqp_frame(1, commands.Basic.Qos(prefetch_count=3)),
    pamqp_frame(1, commands.Basic.Consume(queue="q", consumer_tag="c")),
    pamqp_frame(1, commands.Confirm.Select()),
    publish_frames(1, b"first", routing_key="q"),
])
valid_streams = st.tuples(
    st.sampled_from([b"", SETUP]),
    st.lists(weighted(valid, st.builds(_publish_with_table,
                                       st.sampled_from(["amq.headers", "amq.match"]),
                                       st.binary(max_size=24)), 10), max_size=40),
).map(lambda parts: parts[0] + b"".join(parts[1]))
cuts = st.lists(st.integers(min_value=1, max_value=64), max_size=40)


def chunked(data: bytes, sizes: list[int]) -> list[bytes]:
    """Split `data` at the given chunk sizes; the rest is one last chunk."""
    out = []
    pos = 0
    for size in sizes:
        if pos >= len(data):
            break
        out.append(data[pos:pos + size])
        pos += size
    if pos < len(data):
        out.append(data[pos:])
    return out


def check_output(data: bytes) -> None:
    """Whatever we send must be well-formed frames a client can parse."""
    for channel, value in read_frames(data):
        assert 0 <= channel <= 65535
        if isinstance(value, commands.Connection.Close | commands.Channel.Close):
            assert 100 <= value.reply_code < 600


# --- the frame layer -------------------------------------------------------------------------


@FUZZ
@given(data=st.one_of(st.binary(max_size=300), streams))
def test_parse_frames_raises_only_amqp_errors(data: bytes) -> None:
    buffer = bytearray(data)
    try:
        while True:
            frames, used = parse_frames(buffer, FRAME_MAX - 8)
            del buffer[:used]
            for frame_type, channel, payload in frames:
                assert frame_type in (1, 2, 3, 8)
                assert 0 <= channel <= 65535
                assert len(payload) <= FRAME_MAX - 8
            if not frames:
                break
    except errors.AMQPError as exc:
        assert exc.reply_code == 501
    else:
        assert len(buffer) < 8 or len(buffer) < struct.unpack_from(">I", buffer, 3)[0] + 8


# --- the connection with a recording handler -------------------------------------------------


@FUZZ
@given(data=streams, sizes=cuts)
def test_receive_data_never_raises(data: bytes, sizes: list[int]) -> None:
    conn, handler = open_connection(tune=(16, FRAME_MAX, 10))
    open_channel(conn, 1)
    now = 0.0
    for chunk in chunked(data, sizes):
        now += 0.5
        conn.receive_data(chunk, now)
        check_output(conn.data_to_send(now))
        conn.tick(now)
        check_output(conn.data_to_send(now))
    assert conn.state in (proto.RUNNING, proto.CLOSING, proto.CLOSED)
    if conn.state != proto.RUNNING:
        assert handler.named("closed") == [("closed",)]
    # whatever happened, the connection can still be told the socket is gone
    conn.connection_lost("test over")
    assert conn.closed


@FUZZ
@given(data=st.binary(max_size=200), sizes=cuts)
def test_handshake_with_garbage_never_raises(data: bytes, sizes: list[int]) -> None:
    conn = Driven(RecordingHandler(), {})
    for chunk in chunked(PROTOCOL_HEADER + data, sizes):
        conn.receive_data(chunk, 1.0)
        check_output(conn.data_to_send(1.0))
    assert conn.state != proto.RUNNING
    assert conn.tick(100.0) is False
    assert conn.closed


# --- the connection wired to the real broker ---------------------------------------------------


def _unexpected() -> None:
    raise AssertionError("the connection's exception net was used")


def bridged() -> tuple[ClientConnection, Broker]:
    broker = Broker()
    client = owned_connection(broker, frame_max=FRAME_MAX)
    client.internal_error = _unexpected  # type: ignore[method-assign]
    return client, broker


@FUZZ
@given(data=st.one_of(streams, valid_streams), sizes=cuts)
def test_receive_data_with_the_broker_never_raises(data: bytes, sizes: list[int]) -> None:
    client, broker = bridged()
    for chunk in chunked(data, sizes):
        client.receive(chunk, 0.0)  # the connection's exception net is never used
        check_output(client.take_output(0.0))
    client.shutdown("test over")
    check_output(client.take_output(0.0))
    assert client.session is None
    # the connection's exclusive queues and consumers are gone with it
    for queue in broker.vhosts["/"].queues.values():
        assert queue.exclusive_owner is None
        assert not queue.consumers


def test_bridged_publish_with_malformed_headers_table() -> None:
    """A headers table that the light scanner accepts (its length fits) but that does not
    decode: routing through a headers exchange must end in a Close, not an exception."""
    client, _ = bridged()
    table = b"\x00\x00\x00\x02\x01a"  # length 2, a key with no value
    flags = 0x2000
    data = (pamqp_frame(1, commands.Basic.Publish(exchange="amq.headers", routing_key=""))
            + raw_frame(2, 1, struct.pack(">HHQH", 60, 0, 1, flags) + table)
            + raw_frame(3, 1, b"x"))
    client.receive(data, 0.0)
    out = read_frames(client.take_output(0.0))
    closes: list[Any] = [f for _, f in out
                         if isinstance(f, commands.Connection.Close | commands.Channel.Close)]
    assert closes, out
    assert closes[0].reply_code in (501, 505, 406, 541)


def test_valid_pool_is_well_formed() -> None:
    for data in VALID:
        assert read_frames(data)
    assert read_frames(SETUP)


# The frames a publish is made of, well-formed or not: a whole publish (method, header,
# body) arriving in one read is taken in one step, and must come out exactly as it does
# frame by frame, errors included.
PUBLISH_PARTS = [
    pamqp_frame(1, commands.Basic.Publish(routing_key="q")),
    pamqp_frame(2, commands.Basic.Publish(exchange="amq.topic", routing_key="a.b")),
    raw_frame(1, 1, struct.pack(">HH", 60, 40) + b"\x00\x00\x05ab"),  # truncated publish
    header_frame(1, 3),
    header_frame(1, 0),
    header_frame(2, 3),
    header_frame(1, 3, {"x": 1}),
    header_frame(1, 40),
    header_frame(1, 3, class_id=50),
    raw_frame(2, 1, struct.pack(">HHQH", 60, 0, 3, 0x0010)),  # priority, with no value
    raw_frame(3, 1, b"abc"),
    raw_frame(3, 1, b"ab"),
    raw_frame(3, 1, b"abcd"),
    raw_frame(3, 1, b""),
    raw_frame(3, 2, b"abc"),
    raw_frame(3, 1, b"x" * 40),
    pamqp_frame(1, commands.Basic.Ack(delivery_tag=1)),
]


@FUZZ
@given(st.lists(st.sampled_from(PUBLISH_PARTS), max_size=12))
@example([PUBLISH_PARTS[0], header_frame(1, 0), raw_frame(3, 1, b"")])
@example([PUBLISH_PARTS[0], header_frame(1, 40), raw_frame(3, 1, b"x" * 40)])
@example([PUBLISH_PARTS[0], header_frame(1, 3, class_id=50), raw_frame(3, 1, b"abc")])
@example([PUBLISH_PARTS[0], header_frame(1, 3), raw_frame(3, 1, b"abcd")])
@example([PUBLISH_PARTS[0], header_frame(1, 3), raw_frame(3, 2, b"abc")])
@example([PUBLISH_PARTS[0], header_frame(2, 3), raw_frame(3, 1, b"abc")])
@example([PUBLISH_PARTS[2], header_frame(1, 3), raw_frame(3, 1, b"abc")])
@example([PUBLISH_PARTS[0], PUBLISH_PARTS[0], header_frame(1, 3), raw_frame(3, 1, b"abc")])
def test_a_whole_publish_in_one_read_is_taken_as_frame_by_frame(parts: list[bytes]) -> None:
    results = []
    for chunks in ([b"".join(parts)], parts):
        conn, handler = open_connection(conn_limits=limits(max_message_size=16))
        open_channel(conn, 1)
        open_channel(conn, 2)
        for chunk in chunks:
            conn.receive_data(chunk, 0.0)
        results.append((handler.calls, conn.data_to_send(0.0), conn.state))
    assert results[0] == results[1]
