"""What the TCP server asks of a connection's owner, in any wire protocol (`Owner`), the
code every owner shares (`OwnerBase`), and how a protocol's listener is described
(`Frontend`).

`server.py` runs the same three tasks (reader, writer, deadline ticker) for every
connection and talks to its owner only through `Owner`. The owners are
`bridge.ClientConnection` (AMQP 0-9-1), `mqtt.MqttConnection` and `stomp.StompClient`;
each is an `OwnerBase`, which holds the output buffer and its byte count, the octet
counters, the read pass with its exception boundary, the heartbeat and the memory count,
and drives the protocol's sans-IO connection (`Wire`) through them. A protocol is added
by writing an owner (sans-IO codec in `protocol/<name>/`, the broker reached through
`broker/frontend.py`) and listing a `Frontend` for it in `app.build`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from amqpbroker.broker.broker import Broker
    from amqpbroker.broker.session import Session
    from amqpbroker.protocol.amqp.connection import Limits

OUTBOUND_LIMIT = 4 * 1024 * 1024  # bytes of output past which `writable` is false


class Owner(Protocol):
    """One client connection as the server drives it: bytes in (`receive`), bytes out
    (`take_output`), time (`tick`), and the transport's events."""

    peer: str
    local: str  # the address of the listener the client connected to

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
    def hold(self, mark: int) -> int:
        """Keep the output so far until the store has committed up to `mark`."""
    @property
    def held_until(self) -> int:
        """The commit the oldest held output waits for (0: none is held)."""
    def release(self, committed: int) -> None:
        """Held output whose commit is done may be sent."""
    def drop_held(self) -> None:
        """The commit failed: held output (confirms of what is not on disk) is dropped."""
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


class Wire(Protocol):
    """A protocol's sans-IO connection, as `OwnerBase` drives it."""

    @property
    def state(self) -> Any:
        """Compared before and after a read pass: a change rearms the deadline ticker."""
    @property
    def closed(self) -> bool: ...
    @property
    def close_reason(self) -> str | None: ...
    @property
    def buffer(self) -> bytes | bytearray:
        """Input not yet parsed."""
    def receive_data(self, data: bytes, now: float) -> Iterator[Any]: ...
    def data_sent(self, now: float) -> None: ...
    def next_deadline(self) -> float: ...
    def tick(self, now: float) -> Any: ...
    def connection_lost(self, reason: str) -> None: ...


class OwnerBase(ABC):
    """What every owner does the same way: its output (one list of encoded frames, its
    byte count, the writer's wake-up, `take_output` joining it into one bytes per write,
    and the output held until the store's commit covers the pass that made it),
    the backpressure of the broker's `Sink.writable` and `drained`, the octet counters,
    the read pass (`receive`: the protocol's commands, `Session.end_of_pass`, one
    exception boundary, wake and rearm), the heartbeat of `tick` and `memory`.

    A subclass sets `wire` (its sans-IO connection) and implements `_run` (handle the
    commands of a pass), `_release` (give the broker session back) and `internal_error`
    (end the connection after an unexpected exception); `HEARTBEAT_DUE` is the type of
    its protocol's heartbeat command and `HEARTBEAT` the bytes it sends then.
    """

    HEARTBEAT_DUE: ClassVar[type]
    HEARTBEAT: ClassVar[bytes]

    wire: Wire
    web = False  # served over WebSocket (set by `websocket.py`; management shows it)
    local = "unknown"  # "host:port" of the listener the client connected to (the server's)

    def __init__(self, broker: Broker, *, peer: str, wake: Callable[[], None],
                 rearm: Callable[[], None], loopback: bool) -> None:
        self.broker = broker
        self.peer = peer
        self.loopback = loopback
        self.session: Session | None = None
        self.wake = wake
        self.rearm = rearm
        self.out: list[bytes] = []
        self.buffered = 0
        # Output of passes that recorded changes, each with the commit it waits for, and
        # held output whose commit is done; `out` goes after both.
        self.holds: deque[tuple[int, list[bytes]]] = deque()
        self.released: list[bytes] = []
        self.was_full = False
        self.publisher = False
        self.recv_oct = 0  # bytes read from and written to the socket
        self.send_oct = 0

    @abstractmethod
    def _run(self, commands_in: Iterator[Any]) -> None:
        """Handle each command of a pass, in order."""

    @abstractmethod
    def _release(self) -> None:
        """Give the broker session back (the connection ends)."""

    @abstractmethod
    def internal_error(self) -> None:
        """An unexpected exception in this connection's work: end only this one."""

    # --- state the transport reads -----------------------------------------------------

    @property
    def closed(self) -> bool:
        return self.wire.closed

    @property
    def close_reason(self) -> str | None:
        return self.wire.close_reason

    @property
    def has_output(self) -> bool:
        return bool(self.out or self.holds or self.released)

    def next_deadline(self) -> float:
        return self.wire.next_deadline()

    def memory(self) -> int:
        """Bytes this connection holds: output not yet sent, input not yet parsed, and its
        unacknowledged deliveries."""
        held = self.buffered + len(self.wire.buffer)
        return held + self.session.unacked_memory() if self.session is not None else held

    # --- output ---------------------------------------------------------------------------

    def _append(self, data: bytes) -> None:
        out = self.out
        if not out:
            self.wake()
        out.append(data)
        self.buffered += len(data)

    def writable(self) -> bool:
        if self.buffered < OUTBOUND_LIMIT:
            return True
        self.was_full = True
        return False

    def take_output(self, now: float) -> bytes:
        """Everything that may be sent, as one bytes for one write: the released output,
        then (when nothing is held) the rest."""
        if self.holds or self.released:
            out = self.released
            self.released = []
            if not self.holds:
                out += self.out
                self.out = []
        else:
            out = self.out
            self.out = []
        if not out:
            return b""
        self.wire.data_sent(now)
        data = out[0] if len(out) == 1 else b"".join(out)
        self.buffered -= len(data)
        self.send_oct += len(data)
        return data

    def hold(self, mark: int) -> int:
        """Keep the output so far until the store has committed up to `mark` (the pass
        that made it recorded changes); returns the mark of the hold before it still
        waiting (0: none)."""
        previous = self.holds[-1][0] if self.holds else 0
        self.holds.append((mark, self.out))
        self.out = []
        return previous

    @property
    def held_until(self) -> int:
        return self.holds[0][0] if self.holds else 0

    def release(self, committed: int) -> None:
        holds = self.holds
        while holds and holds[0][0] <= committed:
            self.released += holds.popleft()[1]

    def drop_held(self) -> None:
        for _mark, frames in self.holds:
            self.buffered -= sum(map(len, frames))
        self.holds.clear()

    def drained(self) -> None:
        """The socket took everything: consumers blocked on a full buffer may go on."""
        if self.was_full and self.session is not None:
            self.was_full = False
            try:
                self.session.resume()
            except Exception:
                self.internal_error()

    # --- driven by the transport --------------------------------------------------------

    def receive(self, data: bytes, now: float) -> None:
        """One read pass: handle every command, then deliver to the consumers of the
        queues that became ready and send the coalesced confirms."""
        wire = self.wire
        state = wire.state
        self.recv_oct += len(data)
        try:
            self._run(wire.receive_data(data, now))
            if self.session is not None:
                self.broker.write_soon()
                self.session.end_of_pass()
        except Exception:
            self.internal_error()
        if self.out:
            self.wake()
        if wire.state != state:
            self.rearm()

    def _resume_pass(self, commands_in: Iterator[Any]) -> None:
        """The rest of a pass that a resource alarm held back, handled like `receive`'s."""
        try:
            self._run(commands_in)
            if self.session is not None:
                self.session.end_of_pass()
        except Exception:
            self.internal_error()
        self.wake()

    def tick(self, now: float) -> bool:
        """Act on the time (heartbeats, deadlines). False: drop the connection now."""
        command = self.wire.tick(now)
        if command is None:
            return True
        if type(command) is self.HEARTBEAT_DUE:
            if not self.out:
                self._append(self.HEARTBEAT)
            return True
        self._release()
        return False

    def connection_lost(self, reason: str) -> None:
        """The socket is gone: release everything, send nothing."""
        self.wire.connection_lost(reason)
        self._release()


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
