"""The STOMP connection state machine: CONNECT, version and heart-beat negotiation,
the login deadline, the commands a client may send, ERROR frames and closing.

    AWAITING_CONNECT --CONNECT/STOMP--> (owner: accept_connect) --> OPEN
    AWAITING_CONNECT --anything else--> ERROR "Illegal command", CLOSED
    OPEN --SEND, SUBSCRIBE, ... --> the Frame, for the owner
    OPEN --unknown command, bad frame--> ERROR, CLOSED
    any --fail(message, detail)--> ERROR, CLOSED; --close()--> CLOSED

Heart-beats as RabbitMQ: the client's `heart-beat:cx,cy` is answered `cy',cx'`, each
value 0 if 0, 1000 if below a second, else whole seconds; the server sends an EOL after
half its interval of silence and gives up after three silent receive intervals. Time
only comes in as `now`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from amqpbroker.protocol.stomp.commands import Command, ConnectRequested, Failed, HeartbeatDue
from amqpbroker.protocol.stomp.frames import (
    V10,
    VERSIONS,
    Frame,
    FrameError,
    FrameLimits,
    FrameParser,
    encode,
)

AWAITING_CONNECT, OPEN, CLOSED = "awaiting connect", "open", "closed"
CLIENT_COMMANDS = frozenset(("SEND", "SUBSCRIBE", "UNSUBSCRIBE", "ACK", "NACK", "BEGIN",
                             "COMMIT", "ABORT", "DISCONNECT"))
SUPPORTED = ",".join(VERSIONS)
RECEIVE_SLACK = 3  # silent receive intervals before the connection is given up


def negotiate_version(accept_version: str | None) -> str | None:
    """The highest version in common; None when there is none. Absent: 1.0."""
    if accept_version is None:
        return V10
    offered = {v.strip() for v in accept_version.split(",")}
    common = [v for v in VERSIONS if v in offered]
    return common[-1] if common else None


def _round(milliseconds: int) -> int:
    if milliseconds <= 0:
        return 0
    return 1000 if milliseconds < 1000 else milliseconds // 1000 * 1000


def negotiate_heartbeat(header: str | None) -> tuple[int, int]:
    """(server send interval, expected receive interval) in ms for `heart-beat:cx,cy`;
    ValueError when the header is not two non-negative integers."""
    if header is None:
        return 0, 0
    cx_text, comma, cy_text = header.partition(",")
    cx_text, cy_text = cx_text.strip(), cy_text.strip()
    if not (comma and cx_text.isdigit() and cy_text.isdigit()
            and cx_text.isascii() and cy_text.isascii()):
        raise ValueError(header)
    return _round(int(cy_text)), _round(int(cx_text))


def error_frame(message: str, detail: str, version: str, receipt: str | None = None) -> bytes:
    """An ERROR frame as RabbitMQ sends it."""
    body = detail.encode("utf-8")
    headers = [("message", message), ("content-type", "text/plain"),
               ("version", SUPPORTED), ("content-length", str(len(body)))]
    if receipt is not None:
        headers.insert(0, ("receipt-id", receipt))
    return encode("ERROR", headers, body, version)


class StompConnection:
    """One STOMP connection's protocol state, and what the management API shows of it."""

    mechanism = "PLAIN"
    frame_max = 0
    channel_max = 1
    client_properties: dict[str, str] = {"product": "STOMP client"}

    def __init__(self, limits: FrameLimits, *, now: float, login_timeout: float) -> None:
        self.parser = FrameParser(limits)
        self.state = AWAITING_CONNECT
        self.version = V10
        self.close_reason: str | None = None
        self.send_interval = 0.0  # seconds; 0: no heart-beats
        self.receive_interval = 0.0
        self.last_sent = now
        self.last_received = now
        self.login_deadline = now + login_timeout
        self.heartbeat_header = "0,0"
        self.username = ""
        self.vhost = ""

    @property
    def closed(self) -> bool:
        return self.state == CLOSED

    @property
    def protocol_name(self) -> str:
        return "STOMP " + self.version

    @property
    def heartbeat(self) -> int:
        """The negotiated heart-beat in seconds (the longer direction; 0: none)."""
        return int(max(self.send_interval, self.receive_interval))

    @property
    def buffer(self) -> bytearray:
        """Input not yet parsed."""
        return self.parser.buffer

    # --- input ---------------------------------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> Iterator[Command]:
        """Every command of the complete frames in `data`, in order. A malformed frame
        ends the connection with an ERROR (`Failed`)."""
        if self.state == CLOSED:
            return
        self.last_received = now
        try:
            for frame in self.parser.feed(data):
                if self.state == OPEN:
                    if frame.command in CLIENT_COMMANDS:
                        yield frame
                    elif frame.command in ("CONNECT", "STOMP"):
                        yield self.fail_command("Bad command", "the connection is already "
                                                "connected", frame)
                    else:
                        yield self.fail_command("Bad command", "Could not interpret command "
                                                + repr(frame.command[:50]), frame)
                elif self.state == AWAITING_CONNECT:
                    yield self._connect(frame)
                if self.state == CLOSED:
                    return
        except FrameError as exc:
            yield self.fail_command(exc.message, exc.detail)

    def _connect(self, frame: Frame) -> Command:
        if frame.command not in ("CONNECT", "STOMP"):
            return self.fail_command("Illegal command", "You must log in using CONNECT first",
                                     frame)
        headers = frame.headers
        version = negotiate_version(headers.get("accept-version"))
        if version is None:
            return self.fail_command("Version mismatch",
                                     f"Supported versions are {SUPPORTED}\n", frame)
        try:
            send_ms, receive_ms = negotiate_heartbeat(headers.get("heart-beat"))
        except ValueError:
            return self.fail_command("Invalid heart-beat header",
                                     "heart-beat must be two non-negative integers", frame)
        self.version = version
        self.heartbeat_header = f"{send_ms},{receive_ms}"
        self.send_interval = send_ms / 1000
        self.receive_interval = receive_ms / 1000
        return ConnectRequested(version, headers.get("login"), headers.get("passcode"),
                                headers.get("host"), frame)

    def accept_connect(self, session: str, server: str, now: float, *, username: str,
                       vhost: str) -> bytes:
        """The CONNECTED frame; frames after CONNECT are now parsed in the version."""
        self.state = OPEN
        self.username, self.vhost = username, vhost
        self.parser.version = self.version
        self.last_received = self.last_sent = now
        return encode("CONNECTED", [("server", server), ("session", session),
                                    ("heart-beat", self.heartbeat_header),
                                    ("version", self.version)], b"", self.version)

    # --- output and closing ------------------------------------------------------------

    def fail(self, message: str, detail: str, receipt: str | None = None) -> bytes:
        """The ERROR frame that ends the connection; empty when already closed."""
        if self.state == CLOSED:
            return b""
        self.state = CLOSED
        self.close_reason = message
        return error_frame(message, detail, self.version, receipt)

    def fail_command(self, message: str, detail: str, frame: Frame | None = None) -> Failed:
        receipt = frame.headers.get("receipt") if frame is not None else None
        return Failed(self.fail(message, detail, receipt), message)

    def close(self, reason: str) -> None:
        """End the connection with nothing more to say (DISCONNECT, a lost socket)."""
        if self.state != CLOSED:
            self.state = CLOSED
            self.close_reason = reason

    def connection_lost(self, reason: str) -> None:
        """The socket is gone: nothing more is read or sent."""
        self.close(reason)

    def data_sent(self, now: float) -> None:
        self.last_sent = now

    # --- time --------------------------------------------------------------------------

    def next_deadline(self) -> float:
        if self.state == AWAITING_CONNECT:
            return self.login_deadline
        if self.state == CLOSED:
            return math.inf
        deadline = math.inf
        if self.send_interval:
            deadline = self.last_sent + self.send_interval / 2
        if self.receive_interval:
            deadline = min(deadline, self.last_received + self.receive_interval * RECEIVE_SLACK)
        return deadline

    def tick(self, now: float) -> Command | None:
        """A heart-beat to send, the connection given up (`Failed`), or None."""
        if self.state == AWAITING_CONNECT:
            if now >= self.login_deadline:
                self.close("login timeout")
                return Failed(b"", "login timeout")
            return None
        if self.state == CLOSED:
            return None
        if (self.receive_interval
                and now >= self.last_received + self.receive_interval * RECEIVE_SLACK):
            self.close("missed heart-beats")
            return Failed(b"", "missed heart-beats")
        if self.send_interval and now >= self.last_sent + self.send_interval / 2:
            self.last_sent = now
            return HeartbeatDue()
        return None
