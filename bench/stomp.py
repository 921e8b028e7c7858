"""A small raw asyncio STOMP 1.2 client for the load generator.

CONNECT (heart-beats off), SUBSCRIBE (with a receipt, so the subscription is known to be
in place), SEND, ACK and DISCONNECT. SEND frames are encoded once and written as ~64 KiB
batches of whole frames; incoming frames are parsed in bulk, once per `data_received`:
for a MESSAGE only its `content-length` and, with a client ack mode, its `ack` header are
read, and the ACKs a read pass owes go out in one write. Bodies are never copied.

It talks to any broker (ours or RabbitMQ's STOMP plugin) and shares no code with the
broker under test.
"""

from __future__ import annotations

import asyncio

from bench.stream import StreamClient

_CONTENT_LENGTH = b"\ncontent-length:"
_ACK_HEADER = b"\nack:"


class STOMPError(Exception):
    """The broker sent an ERROR frame, or the socket went away."""


def encode_frame(command: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    """One frame; header values are written as given (the client's are plain)."""
    lines = [command] + [f"{key}:{value}" for key, value in headers.items()]
    return ("\n".join(lines) + "\n\n").encode() + body + b"\0"


def encode_send(destination: str, body: bytes) -> bytes:
    return encode_frame("SEND", {"destination": destination,
                                 "content-length": str(len(body))}, body)


class Client(StreamClient):
    """One STOMP connection. Use `await Client.open(...)`."""

    Error = STOMPError

    def __init__(self) -> None:
        super().__init__()
        self._control: asyncio.Queue[tuple[bytes, bytes] | None] = asyncio.Queue()
        self.client_ack = False

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
        while pos < end:
            if buf[pos] in (10, 13):  # heart-beat EOLs between frames
                pos += 1
                continue
            head_end = buf.find(b"\n\n", pos)
            if head_end < 0:
                break
            body_at = head_end + 2
            length_at = buf.find(_CONTENT_LENGTH, pos, head_end)
            if length_at >= 0:
                value_at = length_at + len(_CONTENT_LENGTH)
                nul = body_at + int(buf[value_at:buf.find(b"\n", value_at, head_end + 1)])
                if nul >= end:
                    break
            else:
                nul = buf.find(b"\0", body_at)
                if nul < 0:
                    break
            if buf.startswith(b"MESSAGE\n", pos):
                delivered += 1
                if self.client_ack:
                    ack_at = buf.find(_ACK_HEADER, pos, head_end) + len(_ACK_HEADER)
                    acks.append(b"ACK\nid:" + buf[ack_at:buf.find(b"\n", ack_at, head_end + 1)]
                                + b"\n\n\0")
            else:
                command = bytes(buf[pos:buf.find(b"\n", pos)]).rstrip(b"\r")
                if command == b"ERROR":
                    self.error = bytes(buf[pos:nul]).decode(errors="replace")
                self._control.put_nowait((command, bytes(buf[pos:nul])))
            pos = nul + 1
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
    async def open(cls, host: str, port: int, user: str, password: str,
                   vhost: str = "/") -> Client:
        loop = asyncio.get_running_loop()
        _transport, client = await loop.create_connection(cls, host, port)
        client.write(encode_frame("CONNECT", {"accept-version": "1.2", "host": vhost,
                                              "login": user, "passcode": password,
                                              "heart-beat": "0,0"}))
        await client._expect(b"CONNECTED")
        return client

    async def _expect(self, command: bytes) -> bytes:
        item = await self._control.get()
        if item is None or item[0] != command:
            raise STOMPError(self.error or f"expected {command!r}, got {item!r}")
        return item[1]

    async def subscribe(self, destination: str, ack: str, prefetch: int = 0) -> None:
        """Subscribe (id 0) and wait for the receipt; `ack` is the STOMP ack mode."""
        headers = {"id": "0", "destination": destination, "ack": ack, "receipt": "subscribed"}
        if prefetch:
            headers["prefetch-count"] = str(prefetch)
        self.client_ack = ack != "auto"
        self.write(encode_frame("SUBSCRIBE", headers))
        await self._expect(b"RECEIPT")

    async def close(self) -> None:
        """DISCONNECT with a receipt (everything before it has been processed), then close."""
        if self.transport is None or self.transport.is_closing():
            return
        if self.error is None:
            self.write(encode_frame("DISCONNECT", {"receipt": "bye"}))
            try:
                async with asyncio.timeout(10):
                    await self._expect(b"RECEIPT")
            except (TimeoutError, STOMPError):
                pass
        self.transport.close()
