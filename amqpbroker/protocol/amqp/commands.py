"""What `Connection.receive_data` returns: one small immutable command per thing that
happened on the wire, in wire order.

The owner of the connection handles each command before it asks for the next one; some
commands wait for an answer (`LoginRequested`: `accept_login` or `refuse_login`), which
the connection takes before it reads on. Bytes the protocol itself answers with
(handshake frames, Channel.Open-Ok, Close-Ok) come as `Send` or inside the command they
belong to, for the owner to put in its one output buffer.

The two hot commands, `Publish` and `MethodReceived`, are tuples (built with
`tuple.__new__`, as cheap as a plain tuple); the rest are frozen dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from amqpbroker.protocol.amqp.fastcodec import HeaderInfo, PublishArgs


class Publish(NamedTuple):
    """A complete Basic.Publish: its arguments, raw content header payload and body."""

    channel: int
    args: PublishArgs
    header: bytes
    info: HeaderInfo
    body: bytes


class MethodReceived(NamedTuple):
    """A method for the broker on an open channel: a pamqp object, or for Basic.Ack,
    Nack and Reject the tuple of the struct codec."""

    channel: int
    method_index: int
    args: Any


@dataclass(frozen=True, slots=True)
class Send:
    """Frames the protocol answers with on its own, to go out in order."""

    data: bytes


@dataclass(frozen=True, slots=True)
class LoginRequested:
    """Connection.Start-Ok: check the login, then `accept_login()` or `refuse_login()`.
    `password` is None for SASL EXTERNAL (a verified client certificate named the user)."""

    mechanism: str
    username: str
    password: str | None


@dataclass(frozen=True, slots=True)
class OpenRequested:
    """Connection.Open: open the vhost, then `accept_open()` or `close(error)`."""

    vhost: str


@dataclass(frozen=True, slots=True)
class SecretUpdated:
    """Connection.Update-Secret: check it, then `accept_secret()` or `close(error)`."""

    username: str
    secret: bytes
    reason: str


@dataclass(frozen=True, slots=True)
class ChannelOpened:
    """A channel was opened; `reply` (Channel.Open-Ok) goes out first."""

    channel: int
    reply: bytes


@dataclass(frozen=True, slots=True)
class ChannelClosed:
    """A channel is gone (the client closed it, or the protocol did for an error of its
    own); `reply` (Close-Ok or Close) goes out first."""

    channel: int
    reply: bytes


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The connection is over, or closing on the protocol's own account (a client
    Close, a failed handshake, a framing error, a timeout): release what it holds."""

    reason: str


@dataclass(frozen=True, slots=True)
class HeartbeatDue:
    """Time to send a heartbeat frame, if nothing else is going out."""


Command = (Publish | MethodReceived | Send | LoginRequested | OpenRequested | SecretUpdated
           | ChannelOpened | ChannelClosed | ConnectionClosed | HeartbeatDue)

HEARTBEAT_DUE = HeartbeatDue()
