"""What every generator client (AMQP, MQTT, STOMP) shares as an asyncio protocol: the
transport, write backpressure (`drain`), the connection's error, and waking a waiter once
`delivered` reaches a mark (`delivered_at_least`). Subclasses parse their protocol in
`data_received` and end their control queue in `_end_control`."""

from __future__ import annotations

import asyncio


class StreamClient(asyncio.Protocol):
    """One connection of a generator client; `Error` is what its failures raise."""

    Error: type[Exception] = ConnectionError

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._resume: asyncio.Future[None] | None = None
        self.paused = False
        self.error: str | None = None
        self.delivered = 0
        self.counter = None  # a shared multiprocessing value updated once per read pass
        self._expected = -1  # wake `_reached` once `delivered` gets here
        self._reached: asyncio.Future[None] | None = None

    def _end_control(self) -> None:
        """The connection is gone: end whoever waits on the control queue."""
        raise NotImplementedError

    def _held(self) -> bool:
        """Writes must wait (the socket's buffer is over its high-water mark)."""
        return self.paused

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.error is None:
            self.error = "connection lost" + (f": {exc}" if exc else "")
        self._end_control()
        self._release_writer()
        self._wake()

    def _release_writer(self) -> None:
        if self._resume is not None and not self._resume.done():
            self._resume.set_result(None)

    def _wake(self) -> None:
        if self._reached is not None and not self._reached.done():
            self._reached.set_result(None)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._release_writer()

    def write(self, data: bytes | memoryview) -> None:
        assert self.transport is not None
        self.transport.write(data)

    async def drain(self) -> None:
        """Wait while writes must wait; raise the connection's error if it failed."""
        while self._held() and self.error is None:
            self._resume = asyncio.get_running_loop().create_future()
            await self._resume
        if self.error is not None:
            raise self.Error(self.error)

    async def delivered_at_least(self, expected: int) -> None:
        """Wait (without polling) until `expected` messages have been delivered."""
        self._expected = expected
        while self.delivered < expected:
            if self.error is not None:
                raise self.Error(self.error)
            self._reached = asyncio.get_running_loop().create_future()
            await self._reached
