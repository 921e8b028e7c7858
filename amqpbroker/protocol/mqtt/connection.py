"""The MQTT connection state machine: CONNECT first, then packets, keepalive, closing.

Sans-IO like `protocol/amqp/connection.py`: `receive_data(bytes, now)` returns an
iterator over what the bytes carry, in wire order, parsing as it goes, so the owner's
answer to one packet (`accept` or `refuse` of a CONNECT) holds for the packets after it.
The packets come as values (`packets.py`), protocol failures as `commands.Failed`; time
comes in as `now` only (`tick`: `commands.Expired`). No output buffer is kept: what the
protocol answers with is the return value of the call that causes it.

Rules:
    state       accepts                          then
    CONNECT     CONNECT (returned to the owner)  OPEN (accept: CONNACK) or CLOSED (refuse)
                anything else                    CLOSED, nothing sent
    OPEN        every client packet but CONNECT  DISCONNECT -> CLOSED
- CONNECT must come within `connect_timeout`; an unsupported protocol level gets the
  3.1.1 CONNACK 0x01. With keepalive K, a client silent for 1.5 K seconds is dropped.
- Inbound MQTT 5 topic aliases are resolved here: a PUBLISH reaches the owner with its
  topic name. A PUBLISH topic with a wildcard, an unknown alias, a second CONNECT, a
  packet only a server sends: the connection fails (MQTT 5: DISCONNECT with the code).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from amqpbroker.protocol.mqtt import codec
from amqpbroker.protocol.mqtt import packets as p
from amqpbroker.protocol.mqtt.commands import Expired, Failed
from amqpbroker.protocol.mqtt.topics import valid_topic

CONNECT_MAX = 1024 * 1024  # a CONNECT is at most this long
TOPIC_ALIAS_MAXIMUM = 64  # inbound topic aliases a client may set up
KEEPALIVE_FACTOR = 1.5

AWAIT_CONNECT, CONNECTING, OPEN, CLOSED = range(4)

_UNEXPECTED = (p.Connack, p.Suback, p.Unsuback, p.Pingresp, p.Auth)

Received = p.Packet | Failed


class Connection:
    """One MQTT connection's protocol state."""

    def __init__(self, *, max_packet_size: int, connect_timeout: float, now: float) -> None:
        self.max_packet_size = max_packet_size
        self.state = AWAIT_CONNECT
        self.version = p.MQTT_311
        self.buffer = b""
        self.keepalive = 0
        self.deadline = now + connect_timeout
        self.last_received = now
        self.close_reason: str | None = None
        self.aliases: dict[int, str] = {}
        # what the client allows the server (MQTT 5 CONNECT properties)
        self.client_max_packet = 268_435_460
        self.client_alias_max = 0
        self.out_aliases: dict[str, int] = {}

    @property
    def closed(self) -> bool:
        return self.state == CLOSED

    def next_deadline(self) -> float:
        if self.state == CLOSED:
            return math.inf
        if self.state == OPEN:
            if not self.keepalive:
                return math.inf
            return self.last_received + self.keepalive * KEEPALIVE_FACTOR
        return self.deadline

    # --- input ---------------------------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> Iterator[Received]:
        """Buffer `data`; iterate over the packets (and a failure) it completes."""
        if self.state == CLOSED:
            return
        self.last_received = now
        buffer = self.buffer + data if self.buffer else data
        pos = 0
        try:
            while self.state != CLOSED:
                limit = self.max_packet_size if self.state == OPEN else CONNECT_MAX
                found = codec.split(buffer, pos, limit)
                if found is None:
                    break
                first, start, end = found
                pos = end
                packet = self._packet(first, buffer, start, end)
                if packet is not None:
                    yield packet
        except codec.MalformedPacket as exc:
            yield self._fail_on(exc)
            return
        finally:
            self.buffer = buffer[pos:] if pos < len(buffer) else b""
            if self.state == CLOSED:
                self.buffer = b""

    def _packet(self, first: int, buffer: bytes, start: int, end: int) -> Received | None:
        kind = first >> 4
        state = self.state
        if state == OPEN:
            if kind == p.PUBLISH:
                publish = codec.decode_publish(first, buffer, start, end, self.version)
                return self._inbound_publish(publish)
            packet = codec.decode(first, buffer, start, end, self.version)
            if isinstance(packet, p.Connect):
                return self.fail(p.PROTOCOL_ERROR, "second CONNECT")
            if isinstance(packet, _UNEXPECTED):
                return self.fail(p.PROTOCOL_ERROR, f"unexpected {type(packet).__name__}")
            if isinstance(packet, p.Disconnect):
                self._close("client disconnected")
            return packet
        if kind != p.CONNECT:
            self._close("a packet before CONNECT")
            return Failed(p.PROTOCOL_ERROR, "a packet before CONNECT", b"")
        if state != AWAIT_CONNECT:
            return self.fail(p.PROTOCOL_ERROR, "second CONNECT")
        try:
            connect = codec.decode(first, buffer, start, end, self.version)
        except codec.MalformedPacket as exc:
            if exc.code == p.UNSUPPORTED_PROTOCOL_VERSION:
                self._close(str(exc))
                return Failed(exc.code, str(exc), b"\x20\x02\x00\x01")
            raise
        assert isinstance(connect, p.Connect)
        self.version = connect.protocol_level
        self.state = CONNECTING
        return connect

    def _inbound_publish(self, publish: p.Publish) -> p.Publish | Failed:
        properties = publish.properties
        if properties:
            alias = properties.get("topic_alias")
            if alias is not None:
                if not 0 < alias <= TOPIC_ALIAS_MAXIMUM:
                    return self.fail(p.TOPIC_ALIAS_INVALID, "topic alias out of range")
                if publish.topic:
                    self.aliases[alias] = publish.topic
                else:
                    topic = self.aliases.get(alias)
                    if topic is None:
                        return self.fail(p.PROTOCOL_ERROR, "unknown topic alias")
                    publish.topic = topic
        if not valid_topic(publish.topic):
            return self.fail(p.TOPIC_NAME_INVALID, "invalid topic name in PUBLISH")
        return publish

    def _fail_on(self, exc: codec.MalformedPacket) -> Failed:
        if self.state in (AWAIT_CONNECT, CONNECTING):
            self._close(str(exc))
            return Failed(exc.code, str(exc), b"")
        return self.fail(exc.code, str(exc))

    # --- answers -------------------------------------------------------------------

    def accept(self, session_present: bool, properties: p.Properties | None = None,
               *, keepalive: int) -> bytes:
        """Accept the CONNECT: the CONNACK to send."""
        self.state = OPEN
        self.keepalive = keepalive
        return codec.encode(p.Connack(session_present, 0, properties or {}), self.version)

    def refuse(self, v3_code: int, v5_code: int) -> bytes:
        """Refuse the CONNECT: the CONNACK to send; the connection is closed."""
        self._close("connection refused")
        if self.version == p.MQTT_5:
            return codec.encode(p.Connack(False, v5_code), self.version)
        return bytes((0x20, 2, 0, v3_code))

    def fail(self, code: int, text: str) -> Failed:
        """Close from the server side for a protocol reason (an MQTT 5 DISCONNECT)."""
        return Failed(code, text, self.close(code, text))

    def close(self, code: int, text: str) -> bytes:
        """Close from the server side: the MQTT 5 DISCONNECT to send (MQTT 3: nothing)."""
        was_open = self.state == OPEN
        if self.state == CLOSED:
            return b""
        self._close(text)
        if was_open and self.version == p.MQTT_5:
            return codec.encode(p.Disconnect(code), p.MQTT_5)
        return b""

    def _close(self, reason: str) -> None:
        if self.state != CLOSED:
            self.state = CLOSED
            self.close_reason = reason

    # --- time and the transport ----------------------------------------------------

    def data_sent(self, now: float) -> None:
        """The owner wrote output: the keepalive counts only what the client sends."""

    def tick(self, now: float) -> Expired | None:
        if now < self.next_deadline():
            return None
        text = "keepalive timeout" if self.state == OPEN else "no CONNECT in time"
        self._close(text)
        return Expired(text)

    def connection_lost(self, reason: str) -> None:
        self._close(reason)

    # --- outbound topic aliases (MQTT 5) -------------------------------------------

    def outbound_alias(self, topic: str, commit: bool = True) -> tuple[int, bool]:
        """The alias to send `topic` under (0: none) and whether it is new (the topic
        name goes with it then); `commit=False` only looks, taking no new alias."""
        alias = self.out_aliases.get(topic)
        if alias is not None:
            return alias, False
        if len(self.out_aliases) >= self.client_alias_max:
            return 0, False
        alias = len(self.out_aliases) + 1
        if commit:
            self.out_aliases[topic] = alias
        return alias, True
