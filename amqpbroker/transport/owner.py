"""What the TCP server asks of a connection's owner, in any wire protocol, and how a
protocol's listener is described (`Frontend`).

`server.py` runs the same three tasks (reader, writer, deadline ticker) for every
connection and talks to its owner only through `Owner`; `bridge.ClientConnection` is
the AMQP 0-9-1 owner. A protocol is added by writing an owner (sans-IO codec in
`protocol/<name>/`, the broker reached through `broker/frontend.py`) and listing a
`Frontend` for it in `app.build`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from amqpbroker.broker.broker import Broker
    from amqpbroker.protocol.amqp.connection import Limits


class Owner(Protocol):
    """One client connection as the server drives it: bytes in (`receive`), bytes out
    (`take_output`), time (`tick`), and the transport's events."""

    peer: str
    held: bool  # output waits for the store's fsync

    @property
    def closed(self) -> bool: ...
    @property
    def close_reason(self) -> str | None: ...
    @property
    def has_output(self) -> bool: ...
    @property
    def paused(self) -> bool:
        """A publish is held back by a resource alarm: stop reading."""
    def receive(self, data: bytes, now: float) -> None: ...
    def take_output(self, now: float) -> bytes: ...
    def drained(self) -> None:
        """The output handed out was written."""
    def next_deadline(self) -> float:
        """When `tick` must next run (math.inf: never)."""
    def tick(self, now: float) -> bool:
        """Act on the time; False: drop the connection now."""
    def wake(self) -> None: ...
    def resume(self, now: float) -> None:
        """The resource alarm cleared: process what was held, then read again."""
    def set_blocked(self, blocked: bool) -> None: ...
    def tell_blocked(self) -> None: ...
    def memory(self) -> int: ...
    def connection_lost(self, reason: str) -> None: ...
    def shutdown(self, reason: str, code: int = ...) -> None: ...
    def shutdown_on_error(self, reason: str) -> None: ...


class OwnerFactory(Protocol):
    def __call__(self, broker: Broker, limits: Limits, *, peer: str, now: float,
                 wake: Callable[[], None], rearm: Callable[[], None], loopback: bool,
                 external_user: str | None) -> Any: ...


@dataclass(frozen=True)
class Frontend:
    """A protocol listener: `port` (0: off) served by owners that `factory` builds, and
    `tls_port` (0: none) for the same over TLS when the server has a certificate."""

    name: str
    port: int
    factory: OwnerFactory
    tls_port: int = 0
