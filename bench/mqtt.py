"""A small raw asyncio MQTT 3.1.1 client for the load generator.

CONNECT (clean session, keepalive off), SUBSCRIBE, PUBLISH at QoS 0 or 1, PUBACK and
DISCONNECT, nothing else. Publishes are encoded once and written as slices of a
pre-encoded buffer (`encode_ring`); incoming packets are parsed in bulk, once per
`data_received`, reading only the packet type, the length and (QoS 1) the packet id; the
PUBACKs a read pass owes go out in one write. The client decodes no topic and no payload.

It talks to any broker (ours or RabbitMQ's MQTT plugin) and shares no code with the
broker under test.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable

from bench.stream import StreamClient

_UINT16 = struct.Struct(">H")
_PUBACK = struct.Struct(">BBH")
PACKET_IDS = 65535  # ids 1..65535, used in turn
DISCONNECT = b"\xe0\x00"


class MQTTError(Exception):
    """The broker refused the connection or a subscription, or the socket went away."""


# --------------------------------------------------------------------------- encoding


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(text: str) -> bytes:
    raw = text.encode()
    return _UINT16.pack(len(raw)) + raw


def _packet(first: int, body: bytes) -> bytes:
    return bytes((first,)) + _remaining_length(len(body)) + body


def encode_connect(client_id: str, user: str, password: str) -> bytes:
    """CONNECT, MQTT 3.1.1, clean session, user name and password, keepalive 0 (off)."""
    flags = 0x80 | 0x40 | 0x02
    body = (_string("MQTT") + bytes((4, flags)) + _UINT16.pack(0) + _string(client_id)
            + _string(user) + _string(password))
    return _packet(0x10, body)


def encode_subscribe(topic: str, qos: int, packet_id: int = 1) -> bytes:
    return _packet(0x82, _UINT16.pack(packet_id) + _string(topic) + bytes((qos,)))


def encode_publish(topic: str, payload: bytes, qos: int = 0, packet_id: int = 0) -> bytes:
    ident = _UINT16.pack(packet_id) if qos else b""
    return _packet(0x30 | qos << 1, _string(topic) + ident + payload)


def encode_ring(topic: str, payload: bytes, qos: int) -> tuple[memoryview, int]:
    """The publishes to write as slices, and how many it holds: QoS 0, ~64 KiB of the
    same packet; QoS 1, one packet for each id 1..65535 in order, so the n-th publish of
    a run (0-based) is packet `n % count` of the buffer."""
    if qos == 0:
        one = encode_publish(topic, payload)
        count = max(1, min(1024, 65536 // len(one)))
        return memoryview(one * count), count
    return memoryview(b"".join(encode_publish(topic, payload, 1, ident)
                               for ident in range(1, PACKET_IDS + 1))), PACKET_IDS


# --------------------------------------------------------------------------- connection


class Client(StreamClient):
    """One MQTT connection. Use `await Client.open(...)`."""

    Error = MQTTError

    def __init__(self) -> None:
        super().__init__()
        self._control: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue()
        # publisher state (hot path): called with the packet id of every PUBACK
        self.on_puback: Callable[[int], None] | None = None

    # ---------------------------------------------------------------- asyncio.Protocol

    def _end_control(self) -> None:
        self._control.put_nowait(None)

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        end = len(buf)
        pos = 0
        delivered = self.delivered
        acks: list[bytes] = []
        while end - pos >= 2:
            first = buf[pos]
            length, shift, at = 0, 0, pos + 1
            while at < end:
                digit = buf[at]
                length |= (digit & 0x7F) << shift
                at += 1
                if digit < 0x80:
                    break
                shift += 7
            else:
                break  # the remaining length itself is incomplete
            stop = at + length
            if stop > end:
                break
            kind = first >> 4
            if kind == 3:  # PUBLISH
                delivered += 1
                if first & 0x06:
                    ident_at = at + 2 + (buf[at] << 8 | buf[at + 1])
                    acks.append(_PUBACK.pack(0x40, 2, buf[ident_at] << 8 | buf[ident_at + 1]))
            elif kind == 4:  # PUBACK
                if self.on_puback is not None:
                    self.on_puback(buf[at] << 8 | buf[at + 1])
            elif kind != 13:  # CONNACK, SUBACK (PINGRESP needs nothing)
                self._control.put_nowait((kind, bytes(buf[at:stop])))
            pos = stop
        del buf[:pos]
        if acks:
            self.write(b"".join(acks))
        self.delivered = delivered
        if self.counter is not None:
            self.counter.value = delivered
        if delivered >= self._expected >= 0:
            self._wake()

    # ---------------------------------------------------------------- API

    @classmethod
    async def open(cls, host: str, port: int, client_id: str, user: str,
                   password: str) -> Client:
        loop = asyncio.get_running_loop()
        _transport, client = await loop.create_connection(cls, host, port)
        client.write(encode_connect(client_id, user, password))
        body = await client._expect(2)
        if body[1] != 0:
            raise MQTTError(f"CONNACK return code {body[1]}")
        return client

    async def _expect(self, kind: int) -> bytes:
        item = await self._control.get()
        if item is None or item[0] != kind:
            raise MQTTError(self.error or f"expected packet type {kind}, got {item!r}")
        return item[1]

    async def subscribe(self, topic: str, qos: int) -> None:
        self.write(encode_subscribe(topic, qos))
        body = await self._expect(9)
        if body[2] == 0x80:
            raise MQTTError(f"subscription to {topic!r} refused")

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.write(DISCONNECT)
            self.transport.close()
