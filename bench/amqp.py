"""A small raw asyncio AMQP 0-9-1 client for the load generator.

Setup (handshake, declares, consume, qos, confirm.select) goes through pamqp, one RPC at a
time. The hot path does not: publishes are pre-encoded with `struct` as whole frame batches
and written with one `transport.write` per batch; incoming frames are parsed in bulk, once
per `data_received`, reading only the delivery tag, the body size and (when latency is
measured) the first 8 body bytes of each delivery; acks go out with multiple=true, one per
`ack_every` deliveries. The client never decodes properties and allocates nothing per
message beyond what the latency samples need.

It talks to any broker (ours or RabbitMQ) and shares no code with the broker under test.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Callable
from urllib.parse import unquote, urlparse

from pamqp import commands, frame
from pamqp.base import Frame

from bench.stream import StreamClient

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
FRAME_MAX = 131072

_FRAME_HEADER = struct.Struct(">BHI")
_UINT32 = struct.Struct(">I")
_UINT64 = struct.Struct(">Q")
_TAG_BITS = struct.Struct(">QB")
_ACK = struct.Struct(">BHIHHQBB")

_BASIC_DELIVER = 60 << 16 | 60
_BASIC_ACK = 60 << 16 | 80
_BASIC_NACK = 60 << 16 | 120
_CONNECTION_BLOCKED = 10 << 16 | 60
_CONNECTION_UNBLOCKED = 10 << 16 | 61


class AMQPError(Exception):
    """The broker closed the channel or the connection, or the socket went away."""


def parse_url(url: str) -> dict[str, object]:
    """amqp://user:pass@host:port/vhost -> connection keywords (RabbitMQ's URI rules)."""
    parts = urlparse(url)
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 5672,
        "user": unquote(parts.username or "guest"),
        "password": unquote(parts.password or "guest"),
        "vhost": vhost,
    }


# --------------------------------------------------------------------------- encoding


def _shortstr(text: str) -> bytes:
    raw = text.encode()
    return bytes((len(raw),)) + raw


def encode_publish(
    exchange: str, routing_key: str, body: bytes, persistent: bool = False, channel: int = 1
) -> bytes:
    """Basic.Publish + content header + one body frame, as the bytes of one message."""
    method = b"\x00\x3c\x00\x28\x00\x00" + _shortstr(exchange) + _shortstr(routing_key) + b"\x00"
    if persistent:  # property flags: delivery-mode only; delivery-mode 2
        header = struct.pack(">HHQHB", 60, 0, len(body), 0x1000, 2)
    else:
        header = struct.pack(">HHQH", 60, 0, len(body), 0)
    out = [_FRAME_HEADER.pack(1, channel, len(method)), method, b"\xce",
           _FRAME_HEADER.pack(2, channel, len(header)), header, b"\xce"]
    if body:
        if len(body) > FRAME_MAX - 8:
            raise ValueError("the generator sends bodies of one frame only")
        out += [_FRAME_HEADER.pack(3, channel, len(body)), body, b"\xce"]
    return b"".join(out)


def encode_ack(delivery_tag: int, multiple: bool, channel: int = 1) -> bytes:
    """A whole Basic.Ack frame, client -> server."""
    return _ACK.pack(1, channel, 13, 60, 80, delivery_tag, 1 if multiple else 0, 0xCE)


# --------------------------------------------------------------------------- connection


class Connection(StreamClient):
    """One AMQP connection. Use `await Connection.open(url)`; channel 1 is opened too."""

    Error = AMQPError

    def __init__(self) -> None:
        super().__init__()
        self._methods: asyncio.Queue[tuple[int, Frame | None]] = asyncio.Queue()
        self.blocked = False
        self.frame_max = FRAME_MAX
        # consumer state (hot path)
        self.last_tag = 0
        self.acked_tag = 0
        self.no_ack = True
        self.ack_every = 0
        self.latency_ns: list[int] | None = None  # when set: now - first 8 body bytes
        self.latency_after = 0  # skip samples of the first N deliveries (warm-up)
        self._remaining = -1  # body bytes still due for the current delivery; -1: none
        self._body_size = 0  # body size of the current delivery
        # publisher-confirm state (hot path)
        self.on_confirm: Callable[[int, bool, bool], None] | None = None

    # ---------------------------------------------------------------- asyncio.Protocol

    def _end_control(self) -> None:
        self._methods.put_nowait((0, None))

    def _held(self) -> bool:
        """Also while the broker has sent connection.blocked."""
        return self.paused or self.blocked

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        end = len(buf)
        pos = 0
        unpack = _FRAME_HEADER.unpack_from
        remaining = self._remaining
        delivered = self.delivered
        last_tag = self.last_tag
        latency = self.latency_ns
        while end - pos >= 8:
            ftype, _channel, size = unpack(buf, pos)
            stop = pos + 8 + size
            if stop > end:
                break
            start = pos + 7
            if ftype == 3:  # body
                if (latency is not None and remaining == self._body_size and size >= 8
                        and delivered >= self.latency_after):
                    sent = _UINT64.unpack_from(buf, start)[0]
                    latency.append(time.perf_counter_ns() - sent)
                remaining -= size
                if remaining == 0:
                    delivered += 1
                    remaining = -1
            elif ftype == 1:
                index = _UINT32.unpack_from(buf, start)[0]
                if index == _BASIC_DELIVER:
                    tag_at = start + 5 + buf[start + 4]
                    last_tag = _UINT64.unpack_from(buf, tag_at)[0]
                elif index in (_BASIC_ACK, _BASIC_NACK):
                    tag, bits = _TAG_BITS.unpack_from(buf, start + 4)
                    if self.on_confirm is not None:
                        self.on_confirm(tag, bool(bits & 1), index == _BASIC_NACK)
                elif index == _CONNECTION_BLOCKED:
                    self.blocked = True
                elif index == _CONNECTION_UNBLOCKED:
                    self.blocked = False
                    self._release_writer()
                else:
                    self._method(bytes(buf[pos:stop]))
            elif ftype == 2:  # content header: class, weight, body size
                remaining = _UINT64.unpack_from(buf, start + 4)[0]
                self._body_size = remaining
                if remaining == 0:
                    delivered += 1
                    remaining = -1
            pos = stop
        del buf[:pos]
        self._remaining = remaining
        self.delivered = delivered
        self.last_tag = last_tag
        if self.counter is not None:
            self.counter.value = delivered
        if delivered >= self._expected >= 0:
            self._wake()
        if not self.no_ack and last_tag - self.acked_tag >= self.ack_every:
            self.ack()

    def _method(self, raw: bytes) -> None:
        _consumed, channel, method = frame.unmarshal(raw)
        if isinstance(method, commands.Connection.Close | commands.Channel.Close):
            self.error = f"{method.reply_code} {method.reply_text}"
            if isinstance(method, commands.Connection.Close):
                self.write(frame.marshal(commands.Connection.CloseOk(), 0))
            else:
                self.write(frame.marshal(commands.Channel.CloseOk(), channel))
            self._wake()
        self._methods.put_nowait((channel, method))

    # ---------------------------------------------------------------- API

    @classmethod
    async def open(cls, url: str, name: str = "bench") -> Connection:
        params = parse_url(url)
        loop = asyncio.get_running_loop()
        _transport, conn = await loop.create_connection(
            cls, str(params["host"]), int(params["port"])  # type: ignore[call-overload]
        )
        await conn._handshake(params, name)
        return conn

    async def expect(self, kind: type[Frame] | tuple[type[Frame], ...]) -> Frame:
        """The next method that is not on the hot path; it must be of `kind`."""
        _channel, method = await self._methods.get()
        if method is None or not isinstance(method, kind):
            raise AMQPError(self.error or f"expected {kind}, got {method!r}")
        return method

    async def rpc(self, method: Frame, reply: type[Frame], channel: int = 1) -> Frame:
        self.write(frame.marshal(method, channel))
        return await self.expect(reply)

    async def _handshake(self, params: dict[str, object], name: str) -> None:
        self.write(PROTOCOL_HEADER)
        await self.expect(commands.Connection.Start)
        response = f"\0{params['user']}\0{params['password']}"
        properties = {
            "product": "amqpbroker-bench",
            "connection_name": name,
            "capabilities": {"publisher_confirms": True, "connection.blocked": True,
                             "basic.nack": True, "consumer_cancel_notify": True},
        }
        self.write(frame.marshal(commands.Connection.StartOk(
            client_properties=properties, mechanism="PLAIN", response=response), 0))
        tune = await self.expect(commands.Connection.Tune)
        self.frame_max = min(FRAME_MAX, tune.frame_max or FRAME_MAX)  # type: ignore[attr-defined]
        self.write(frame.marshal(commands.Connection.TuneOk(
            channel_max=tune.channel_max, frame_max=self.frame_max, heartbeat=0), 0))  # type: ignore[attr-defined]
        self.write(frame.marshal(commands.Connection.Open(virtual_host=str(params["vhost"])), 0))
        await self.expect(commands.Connection.OpenOk)
        await self.rpc(commands.Channel.Open(), commands.Channel.OpenOk)

    async def declare_queue(self, name: str = "", durable: bool = False,
                            exclusive: bool = False, passive: bool = False) -> tuple[str, int]:
        ok = await self.rpc(commands.Queue.Declare(queue=name, durable=durable,
                                                   exclusive=exclusive, passive=passive),
                            commands.Queue.DeclareOk)
        return ok.queue, ok.message_count  # type: ignore[attr-defined]

    async def delete_queue(self, name: str) -> None:
        await self.rpc(commands.Queue.Delete(queue=name), commands.Queue.DeleteOk)

    async def declare_exchange(self, name: str, kind: str) -> None:
        await self.rpc(commands.Exchange.Declare(exchange=name, exchange_type=kind),
                       commands.Exchange.DeclareOk)

    async def delete_exchange(self, name: str) -> None:
        await self.rpc(commands.Exchange.Delete(exchange=name), commands.Exchange.DeleteOk)

    async def bind(self, queue: str, exchange: str, routing_key: str = "") -> None:
        await self.rpc(commands.Queue.Bind(queue=queue, exchange=exchange,
                                           routing_key=routing_key), commands.Queue.BindOk)

    async def qos(self, prefetch: int) -> None:
        await self.rpc(commands.Basic.Qos(prefetch_count=prefetch), commands.Basic.QosOk)

    async def confirm_select(self) -> None:
        await self.rpc(commands.Confirm.Select(), commands.Confirm.SelectOk)

    async def consume(self, queue: str, no_ack: bool, ack_every: int = 0) -> None:
        self.no_ack = no_ack
        self.ack_every = max(1, ack_every)
        await self.rpc(commands.Basic.Consume(queue=queue, no_ack=no_ack),
                       commands.Basic.ConsumeOk)

    def ack(self) -> None:
        """Ack every delivery so far with one multiple=true Basic.Ack."""
        if self.last_tag > self.acked_tag:
            self.write(encode_ack(self.last_tag, True))
            self.acked_tag = self.last_tag

    async def close(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        if self.error is None:
            self.write(frame.marshal(commands.Connection.Close(
                reply_code=200, reply_text="bye", class_id=0, method_id=0), 0))
            try:
                async with asyncio.timeout(10):
                    while True:
                        _channel, method = await self._methods.get()
                        if method is None or isinstance(method, commands.Connection.CloseOk):
                            break
            except TimeoutError:
                pass
        self.transport.close()
