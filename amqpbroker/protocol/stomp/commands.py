"""What `StompConnection.receive_data` and `tick` return, in wire order.

After CONNECTED every client frame comes as its `Frame` (the hot path: no object
beyond the frame itself). The rest are small frozen dataclasses: a CONNECT to answer
with `accept_connect` or `fail`, the protocol's own failure (its ERROR frame is in
`data`; the connection is closed), and a heart-beat to send.
"""

from __future__ import annotations

from dataclasses import dataclass

from amqpbroker.protocol.stomp.frames import Frame


@dataclass(frozen=True, slots=True)
class ConnectRequested:
    """CONNECT or STOMP with a version in common: check the login and open `host` (None
    when absent), then `accept_connect()` or `fail()`."""

    version: str
    login: str | None
    passcode: str | None
    host: str | None
    frame: Frame


@dataclass(frozen=True, slots=True)
class Failed:
    """The protocol found the input bad (or a deadline passed): `data` (an ERROR frame,
    possibly empty) goes out, then the connection closes."""

    data: bytes
    reason: str


@dataclass(frozen=True, slots=True)
class HeartbeatDue:
    """Nothing was sent for half the negotiated interval: send an EOL."""


Command = Frame | ConnectRequested | Failed | HeartbeatDue
