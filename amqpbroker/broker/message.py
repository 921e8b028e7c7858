"""A message as the broker keeps it: the raw content-header payload and body bytes.

Only what routing and queueing need is read out of the header (by the protocol layer's
scanner, before the message is built); the headers table is decoded on first use only.
A delivery reuses the header payload and body unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from amqpbroker import errors

HeadersDecoder = Callable[[bytes, tuple[int, int]], dict[str, Any]]


class Message:
    """One published message, shared by every queue it was routed to."""

    __slots__ = ("_headers", "body", "decoder", "exchange", "expiration", "header",
                 "headers_span", "persistent", "priority", "routing_key", "user_id")

    # Positional, unlike the other constructors: one is built per publish, and keyword
    # arguments would cost about half a microsecond each time.
    def __init__(self, exchange: str, routing_key: str, header: bytes, body: bytes,
                 delivery_mode: int, priority: int, expiration: str | None,
                 headers_span: tuple[int, int] | None, user_id: str | None,
                 decoder: HeadersDecoder) -> None:
        self.exchange = exchange
        self.routing_key = routing_key
        self.header = header
        self.body = body
        self.persistent = delivery_mode == 2
        self.priority = priority
        self.expiration = expiration
        self.headers_span = headers_span
        self.user_id = user_id
        self.decoder = decoder
        self._headers: dict[str, Any] | None = None

    @property
    def headers(self) -> dict[str, Any] | None:
        """The headers table, decoded on first use; None when the message has none."""
        if self._headers is None and self.headers_span is not None:
            try:
                self._headers = self.decoder(self.header, self.headers_span)
            except ValueError as exc:
                raise errors.AMQPConnectionError(
                    errors.FRAME_ERROR, f"cannot decode the headers table: {exc}") from exc
        return self._headers


    def sender_routes(self) -> list[str]:
        """CC and BCC header values: extra routing keys chosen by the sender. The raw
        header bytes are searched first, so most messages never decode their headers."""
        if self._headers is None:
            span = self.headers_span
            if span is None:
                return []
            raw = self.header[span[0]:span[1]]
            if b"\x02CC" not in raw and b"\x03BCC" not in raw:
                return []
        headers = self.headers or {}
        routes: list[str] = []
        for key in ("CC", "BCC"):
            values = headers.get(key)
            if isinstance(values, list):
                routes.extend(v.decode("utf-8", "replace") if isinstance(v, bytes) else v
                              for v in values if isinstance(v, str | bytes))
        return routes


class Entry:
    """A message's place in one queue: sequence number, redelivery state, expiry time,
    and where the store keeps it."""

    __slots__ = ("delivery_count", "expires_at", "message", "redelivered", "seq", "stored")

    def __init__(self, seq: int, message: Message, expires_at: float | None, *,
                 stored: int = 0) -> None:
        self.seq = seq
        self.message = message
        self.expires_at = expires_at
        self.redelivered = False
        self.delivery_count = 0
        self.stored = stored  # where the store keeps the message (0: not stored)

    def __lt__(self, other: Entry) -> bool:
        return self.seq < other.seq
