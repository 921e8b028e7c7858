"""The connection state machine: handshake, channel bookkeeping, heartbeats, closing.

Sans-IO, in the manner of h11: `receive_data(bytes, now)` returns the commands the bytes
carry (`commands.py`), in wire order, as an iterator that parses as it goes, so that the
answers the owner gives to one command (a channel closed for an error, an accepted login)
hold for the frames after it. This module holds no output buffer: the frames it answers
with itself come back as `Send` commands or as the return value of the call that causes
them. It imports nothing above the protocol layer and calls nothing above it.

Rules (RabbitMQ 3.13 behaviour):
    state        accepts                              then
    HEADER       8-byte protocol header               START (sends Connection.Start)
    START        Connection.Start-Ok (PLAIN/AMQPLAIN) LOGIN (LoginRequested)
    LOGIN        the owner's accept_login/refuse_login TUNE (sends Tune) or CLOSING (403)
    TUNE         Connection.Tune-Ok                   OPEN
    OPEN         Connection.Open (OpenRequested)      RUNNING (accept_open: Open-Ok) or
                                                      CLOSING (refuse_open: 530)
    RUNNING      channel frames, Connection.Close     CLOSED (sends Close-Ok)
    CLOSING      only Close / Close-Ok, rest dropped  CLOSED
- Frames before Open-Ok are limited to 4096 bytes; a handshake must finish in 10 s.
- A channel error closes that channel only; methods on it are dropped until Close-Ok.
- A peer silent for two heartbeat intervals is dead; we send a heartbeat every half interval.
"""

from __future__ import annotations

import platform
import socket
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from pamqp import commands, decode

from amqpbroker import __version__, errors
from amqpbroker.protocol.amqp import fastcodec
from amqpbroker.protocol.amqp.assembler import ChannelAssembler
from amqpbroker.protocol.amqp.commands import (
    HEARTBEAT_DUE,
    ChannelClosed,
    ChannelOpened,
    Command,
    ConnectionClosed,
    LoginRequested,
    MethodReceived,
    OpenRequested,
    Publish,
    SecretUpdated,
    Send,
)
from amqpbroker.protocol.amqp.framing import (
    decode_method,
    encode_method,
    method_index,
    parse_frames,
)
from amqpbroker.protocol.amqp.spec import (
    BASIC_ACK,
    BASIC_NACK,
    BASIC_PUBLISH,
    BASIC_REJECT,
    CHANNEL_CLOSE,
    CHANNEL_CLOSE_OK,
    CHANNEL_OPEN,
    CLASS_BASIC,
    CLASS_CONNECTION,
    CONNECTION_CLOSE,
    CONNECTION_CLOSE_OK,
    FRAME_BODY,
    FRAME_HEADER,
    FRAME_HEARTBEAT,
    FRAME_METHOD,
    FRAME_OVERHEAD,
    METHOD_BASIC_PUBLISH,
    PROTOCOL_HEADER,
    class_of,
    split_index,
)

HEADER, START, LOGIN, TUNE, OPEN, RUNNING, CLOSING, CLOSED = range(8)

# RabbitMQ also accepts the 0-9 and 0-8 headers, answering with their version numbers.
ACCEPTED_HEADERS = {
    PROTOCOL_HEADER: (0, 9),
    b"AMQP\x01\x01\x00\x09": (0, 9),
    b"AMQP\x01\x01\x08\x00": (8, 0),
    b"AMQP\x01\x01\x09\x01": (8, 0),
}
MIN_FRAME_MAX = 4096
_PROTOCOL_HEADER_SIZE = len(PROTOCOL_HEADER)
_CHANNEL_OPEN_IDS = split_index(CHANNEL_OPEN)

_PUBLISH_PREFIX = BASIC_PUBLISH.to_bytes(4, "big")

_FAST_DECODERS: dict[int, Callable[[bytes], Any]] = {
    BASIC_PUBLISH: fastcodec.decode_publish,
    BASIC_ACK: fastcodec.decode_ack,
    BASIC_REJECT: fastcodec.decode_reject,
    BASIC_NACK: fastcodec.decode_nack,
}

_new_tuple = tuple.__new__


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """The negotiable and fixed limits of one connection; the values come from the
    broker's settings (`app.connection_limits`), which hold the defaults."""

    channel_max: int
    frame_max: int
    heartbeat: int
    handshake_timeout: float
    max_message_size: int
    pre_auth_frame_max: int
    max_table_depth: int


def server_properties(capabilities: dict[str, bool]) -> dict[str, Any]:
    """Connection.Start server properties, shaped like RabbitMQ's."""
    return {
        "capabilities": capabilities,
        "cluster_name": f"amqpbroker@{socket.gethostname()}",
        "copyright": "Copyright (c) the amqpbroker authors",
        "information": "Licensed under the MIT licence. An AMQP 0-9-1 broker in Python.",
        "platform": f"Python {platform.python_version()}",
        "product": "amqpbroker",
        "version": __version__,
    }


class Connection:
    """One AMQP connection's protocol state, without IO."""

    protocol_name = "AMQP 0-9-1"  # as the management API shows it

    def __init__(self, *, capabilities: dict[str, bool], limits: Limits, now: float,
                 external_user: str | None = None) -> None:
        # The common name of a verified TLS client certificate: offers SASL EXTERNAL.
        self.external_user = external_user
        self.capabilities = capabilities
        self.limits = limits
        self.state = HEADER
        self.buffer = bytearray()
        self.channel_max = limits.channel_max
        self.frame_max = limits.frame_max
        self.heartbeat = 0
        self.max_payload = limits.pre_auth_frame_max - FRAME_OVERHEAD
        self.channels: dict[int, ChannelAssembler] = {}
        self.closing_channels: set[int] = set()
        self.client_properties: dict[str, Any] = {}
        self.username = ""
        self.password: str | None = None
        self.mechanism = ""
        self.vhost = ""
        self.started_at = now
        self.last_received = now
        self.last_sent = now
        self.close_reason: str | None = None
        self.hold_publishes = False  # a resource alarm: do not take publishes
        self.paused = False  # a publish is waiting in the buffer for the alarm to clear
        self._announced = False  # the owner knows the connection is over
        self._drop_batch = False  # the owner closed it: the frames of this pass are dropped

    @property
    def closed(self) -> bool:
        return self.state == CLOSED

    @property
    def client_capabilities(self) -> dict[str, Any]:
        caps = self.client_properties.get("capabilities")
        return caps if isinstance(caps, dict) else {}

    def data_sent(self, now: float) -> None:
        """The owner wrote output: the heartbeat we owe counts from now."""
        self.last_sent = now

    # --- input --------------------------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> Iterator[Command]:
        """Buffer `data`; the commands of every complete frame buffered, in order.

        Handle each command before taking the next: later frames are read in the state
        the answers leave behind."""
        self.last_received = now
        if self.state != CLOSED:
            self.buffer += data
        return self._commands()

    def _commands(self) -> Iterator[Command]:
        self._drop_batch = False
        if self.state == CLOSED:
            return
        buffer = self.buffer
        try:
            if self.state == HEADER:
                if len(buffer) < _PROTOCOL_HEADER_SIZE:
                    return
                version = ACCEPTED_HEADERS.get(bytes(buffer[:_PROTOCOL_HEADER_SIZE]))
                if version is None:
                    self._finish("bad protocol header")
                    yield Send(PROTOCOL_HEADER)
                    yield from self._announce()
                    return
                del buffer[:_PROTOCOL_HEADER_SIZE]
                yield Send(self._start(*version))
            while self.state != CLOSED:
                if self.hold_publishes:
                    yield from self._until_publish()
                    return
                frames, used = self._parse(-1)
                if used:
                    del buffer[:used]
                if not frames:
                    return
                count = len(frames)
                i = 0
                while i < count:
                    frame_type, channel, payload = frames[i]
                    command: Command | None = None
                    if (frame_type == FRAME_METHOD and payload.startswith(_PUBLISH_PREFIX)
                            and i + 2 < count):
                        command = self._whole_publish(channel, payload, frames[i + 1],
                                                      frames[i + 2])
                    if command is not None:
                        i += 3
                    else:
                        i += 1
                        command = self._frame(frame_type, channel, payload)
                    if command is not None:
                        yield command
                    if self.state >= CLOSING:
                        if self._drop_batch:
                            self._drop_batch = False
                            return
                        yield from self._announce()
                        if self.state == CLOSED:
                            return
                    if self.hold_publishes:
                        break
        except errors.AMQPConnectionError as exc:
            if self.state < RUNNING:
                self._finish(exc.reply_text)
            else:
                yield Send(self._close(exc))
            yield from self._announce()
        except errors.HandshakeFailed as exc:
            self._finish(str(exc))
            yield from self._announce()

    def _announce(self) -> Iterator[Command]:
        if not self._announced:
            self._announced = True
            yield ConnectionClosed(self.close_reason or "closed")

    def _parse(self, max_frames: int) -> tuple[list[tuple[int, int, bytes]], int]:
        """Frames off the buffer; after a framing error the rest of the input is
        meaningless, so it is dropped (the peer's Close-Ok comes in a later read)."""
        try:
            return parse_frames(self.buffer, self.max_payload, max_frames)
        except errors.AMQPConnectionError:
            self.buffer.clear()
            raise

    def _until_publish(self) -> Iterator[Command]:
        """Under a resource alarm: process frame by frame and stop, leaving it buffered,
        at the first Basic.Publish (RabbitMQ's connection.blocked behaviour)."""
        buffer = self.buffer
        while self.state != CLOSED:
            frames, used = self._parse(1)
            if not frames:
                return
            frame_type, channel, payload = frames[0]
            if (frame_type == FRAME_METHOD and channel and self.state == RUNNING
                    and payload[:4] == _PUBLISH_PREFIX):
                self.paused = True
                return
            del buffer[:used]
            command = self._frame(frame_type, channel, payload)
            if command is not None:
                yield command
            if self.state >= CLOSING:
                if self._drop_batch:
                    self._drop_batch = False
                    return
                yield from self._announce()

    def resume(self, now: float) -> Iterator[Command]:
        """The alarm cleared: the commands held back."""
        self.hold_publishes = False
        self.paused = False
        return self.receive_data(b"", now)

    def _frame(self, frame_type: int, channel: int, payload: bytes) -> Command | None:
        if channel and self.state == RUNNING:  # the common case first
            if frame_type == FRAME_METHOD:
                return self._channel_method(channel, payload)
            if frame_type != FRAME_HEARTBEAT:
                return self._content(frame_type, channel, payload)
        if self.state == CLOSING:
            if frame_type == FRAME_METHOD and channel == 0:
                index = method_index(payload)
                if index == CONNECTION_CLOSE_OK:
                    self._finish(self.close_reason or "closed")
                elif index == CONNECTION_CLOSE:
                    self._finish(self.close_reason or "closed")
                    return Send(encode_method(0, commands.Connection.CloseOk()))
            return None
        if frame_type == FRAME_HEARTBEAT:
            if channel != 0:
                raise errors.AMQPConnectionError(
                    errors.UNEXPECTED_FRAME, f"type {FRAME_HEARTBEAT}, all octets = <<>>"
                )
            return None
        if channel == 0:
            if frame_type != FRAME_METHOD:
                raise errors.AMQPConnectionError(
                    errors.UNEXPECTED_FRAME, "expected method frame, got non method frame instead"
                )
            return self._connection_method(payload)
        if self.state != RUNNING:
            raise errors.HandshakeFailed("channel frame before the connection was open")
        if frame_type == FRAME_METHOD:
            return self._channel_method(channel, payload)
        return self._content(frame_type, channel, payload)

    def _whole_publish(self, channel: int, method: bytes, header: tuple[int, int, bytes],
                       body: tuple[int, int, bytes]) -> Publish | None:
        """The three frames of a common publish as one command, or None: take them one
        by one."""
        if (header[0] != FRAME_HEADER or body[0] != FRAME_BODY or header[1] != channel
                or body[1] != channel or self.state != RUNNING):
            return None
        assembler = self.channels.get(channel)
        taken = assembler.whole_publish(method, header[2], body[2]) if assembler else None
        if taken is None:
            return None
        return _new_tuple(Publish, (channel, taken[0], header[2], taken[1], body[2]))

    def _content(self, frame_type: int, channel: int, payload: bytes) -> Command | None:
        """A content header or body frame on an open connection."""
        assembler = self.channels.get(channel)
        if assembler is None:
            if channel in self.closing_channels:
                return None
            raise errors.AMQPConnectionError(errors.CHANNEL_ERROR, "expected 'channel.open'")
        if frame_type == FRAME_HEADER:
            done = assembler.content_header(payload)
        else:
            done = assembler.content_body(payload)
        if not done:
            return None
        try:
            body = assembler.take_body() if frame_type == FRAME_BODY else b""
        except errors.ChannelError as exc:
            return ChannelClosed(channel, self.close_channel(
                channel, exc.at(CLASS_BASIC, METHOD_BASIC_PUBLISH)))
        return _new_tuple(Publish, (channel, assembler.args, assembler.header, assembler.info,
                                    body))

    def _channel_method(self, channel: int, payload: bytes) -> Command | None:
        index = method_index(payload)
        assembler = self.channels.get(channel)
        if assembler is None:
            if channel in self.closing_channels:
                if index == CHANNEL_CLOSE_OK:
                    self.closing_channels.discard(channel)
                elif index == CHANNEL_CLOSE:
                    self.closing_channels.discard(channel)
                    return Send(encode_method(channel, commands.Channel.CloseOk()))
                return None
            if index == CHANNEL_OPEN and len(self.channels) >= self.channel_max:
                raise errors.AMQPConnectionError(
                    errors.NOT_ALLOWED,
                    f"number of channels opened ({len(self.channels)}) has reached the "
                    f"negotiated channel_max ({self.channel_max})",
                )
            if index != CHANNEL_OPEN:
                raise errors.AMQPConnectionError(
                    errors.CHANNEL_ERROR, "expected 'channel.open'", *split_index(index)
                )
            decode_method(index, payload, self.limits.max_table_depth)
            self.channels[channel] = ChannelAssembler(self.limits.max_message_size)
            return ChannelOpened(channel, encode_method(channel, commands.Channel.OpenOk()))
        fast = _FAST_DECODERS.get(index)
        if fast is not None:
            try:
                args = fast(payload)
            except ValueError as exc:
                raise errors.AMQPConnectionError(
                    errors.FRAME_ERROR, "cannot decode method", *split_index(index)
                ) from exc
        else:
            args = decode_method(index, payload, self.limits.max_table_depth)
            if class_of(index) == CLASS_CONNECTION:
                raise errors.AMQPConnectionError(
                    errors.COMMAND_INVALID, "unimplemented method", *split_index(index)
                )
        if assembler.method(index, args):
            return None
        if index == CHANNEL_CLOSE:
            del self.channels[channel]
            return ChannelClosed(channel, encode_method(channel, commands.Channel.CloseOk()))
        if index == CHANNEL_OPEN:
            raise errors.AMQPConnectionError(
                errors.CHANNEL_ERROR, "second 'channel.open' seen", *_CHANNEL_OPEN_IDS
            )
        if index == CHANNEL_CLOSE_OK:
            return None
        return _new_tuple(MethodReceived, (channel, index, args))

    def close_channel(self, channel: int, error: errors.AMQPError) -> bytes:
        """Close one channel from the server side (a soft error): the Channel.Close to
        send, or nothing when the channel is not open."""
        if self.channels.pop(channel, None) is None:
            return b""
        self.closing_channels.add(channel)
        return encode_method(channel, commands.Channel.Close(
            error.reply_code, error.reply_text, error.class_id, error.method_id))

    # --- connection class ------------------------------------------------------------

    def _start(self, major: int, minor: int) -> bytes:
        self.state = START
        return encode_method(0, commands.Connection.Start(
            version_major=major, version_minor=minor,
            server_properties=server_properties(self.capabilities),
            mechanisms="PLAIN AMQPLAIN" + (" EXTERNAL" if self.external_user else ""),
            locales="en_US",
        ))

    def _connection_method(self, payload: bytes) -> Command | None:
        index = method_index(payload)
        method = decode_method(index, payload, self.limits.max_table_depth)
        if class_of(index) != CLASS_CONNECTION:
            if self.state != RUNNING:
                raise errors.HandshakeFailed("method on channel 0 before the connection was open")
            raise errors.AMQPConnectionError(
                errors.CHANNEL_ERROR, "unexpected method in connection state running",
                *split_index(index),
            )
        if isinstance(method, commands.Connection.StartOk) and self.state == START:
            return self._start_ok(method)
        if isinstance(method, commands.Connection.TuneOk) and self.state == TUNE:
            self._tune_ok(method)
            return None
        if isinstance(method, commands.Connection.Open) and self.state == OPEN:
            return OpenRequested(method.virtual_host)
        if isinstance(method, commands.Connection.Close):
            self._finish(f"closed by client: {method.reply_code} {method.reply_text}")
            return Send(encode_method(0, commands.Connection.CloseOk()))
        if isinstance(method, commands.Connection.CloseOk):
            self._finish("closed")
            return None
        if isinstance(method, commands.Connection.UpdateSecret) and self.state == RUNNING:
            new_secret = method.new_secret or b""
            secret = new_secret.encode("utf-8") if isinstance(new_secret, str) else new_secret
            return SecretUpdated(self.username, secret, method.reason or "")
        if self.state != RUNNING:
            raise errors.HandshakeFailed(f"unexpected {method.name} during the handshake")
        raise errors.AMQPConnectionError(
            errors.COMMAND_INVALID, "unimplemented method", *split_index(index)
        )

    def _start_ok(self, method: commands.Connection.StartOk) -> LoginRequested:
        props = method.client_properties
        self.client_properties = props if isinstance(props, dict) else {}
        mechanism = method.mechanism
        given = method.response
        response = given.encode("utf-8") if isinstance(given, str) else given
        if mechanism == "EXTERNAL" and self.external_user is not None:
            credentials: tuple[str, str | None] | None = (self.external_user, None)
        else:
            credentials = _parse_credentials(mechanism, response)
        if credentials is None:
            raise errors.HandshakeFailed(f"unsupported mechanism or response: {mechanism}")
        username, password = credentials
        self.mechanism = mechanism
        self.username = username
        self.state = LOGIN
        return LoginRequested(mechanism, username, password)

    def accept_login(self) -> bytes:
        """The login is good: the Connection.Tune to send."""
        self.state = TUNE
        return encode_method(0, commands.Connection.Tune(
            channel_max=self.limits.channel_max, frame_max=self.limits.frame_max,
            heartbeat=self.limits.heartbeat,
        ))

    def refuse_login(self) -> bytes:
        """The login is refused: a 403 Close if the client understands it, otherwise the
        connection just ends (as RabbitMQ does)."""
        if not self.client_capabilities.get("authentication_failure_close"):
            self._finish(f"login refused for user {self.username!r}")
            self._announced = True
            return b""
        self._announced = True
        return self._close(errors.login_refused(self.mechanism))

    def _tune_ok(self, method: commands.Connection.TuneOk) -> None:
        ours = self.limits
        channel_max = method.channel_max or ours.channel_max
        frame_max = method.frame_max or ours.frame_max
        if channel_max > ours.channel_max:
            raise errors.HandshakeFailed(
                f"negotiated channel_max = {channel_max} is higher than the maximum allowed "
                f"value ({ours.channel_max})")
        if frame_max > ours.frame_max or frame_max < MIN_FRAME_MAX:
            raise errors.HandshakeFailed(
                f"negotiated frame_max = {frame_max} is outside the allowed range "
                f"[{MIN_FRAME_MAX}, {ours.frame_max}]")
        self.channel_max = channel_max
        self.frame_max = frame_max
        self.heartbeat = method.heartbeat
        self.state = OPEN

    def accept_open(self, vhost: str) -> bytes:
        """The vhost is open: the Connection.Open-Ok to send."""
        self.vhost = vhost
        self.state = RUNNING
        self.max_payload = self.frame_max - FRAME_OVERHEAD
        return encode_method(0, commands.Connection.OpenOk())

    def refuse_open(self, error: errors.AMQPError) -> bytes:
        """The vhost cannot be opened: the Connection.Close to send."""
        self._announced = True
        return self._close(error)

    def accept_secret(self) -> bytes:
        """The new secret is taken: the Connection.Update-Secret-Ok to send."""
        return encode_method(0, commands.Connection.UpdateSecretOk())

    # --- closing and time ---------------------------------------------------------------

    def close(self, error: errors.AMQPError) -> bytes:
        """Close the connection from the server side: the Connection.Close to send. The
        rest of the frames read in this pass are dropped."""
        if self.state in (CLOSING, CLOSED):
            return b""
        self._drop_batch = True
        self._announced = True
        return self._close(error)

    def _close(self, error: errors.AMQPError) -> bytes:
        if self.state == HEADER:
            self._finish(error.reply_text)
            return b""
        self.close_reason = error.reply_text
        self.state = CLOSING
        self.channels.clear()
        self.closing_channels.clear()
        return encode_method(0, commands.Connection.Close(
            error.reply_code, error.reply_text, error.class_id, error.method_id))

    def connection_lost(self, reason: str) -> None:
        """The socket is gone (or we dropped it): nothing more is sent or read."""
        if self.state != CLOSED:
            self._finish(reason)

    def _finish(self, reason: str) -> None:
        if self.close_reason is None:
            self.close_reason = reason
        self.state = CLOSED
        self.channels.clear()
        self.closing_channels.clear()

    def tick(self, now: float) -> Command | None:
        """Check the deadlines: `HeartbeatDue`, `ConnectionClosed` (drop the connection
        now) or None."""
        if self.state == CLOSED:
            return ConnectionClosed(self.close_reason or "closed")
        if self.state != RUNNING and self.state != CLOSING:
            if now - self.started_at > self.limits.handshake_timeout:
                self._finish("handshake timeout")
                return ConnectionClosed("handshake timeout")
            return None
        if self.state == CLOSING:
            if now - self.last_received > max(self.limits.handshake_timeout, 2 * self.heartbeat):
                self._finish(self.close_reason or "close timeout")
                return ConnectionClosed(self.close_reason or "close timeout")
            return None
        heartbeat = self.heartbeat
        if self.paused:
            self.last_received = now  # we are not reading; its silence is ours
        if heartbeat:
            if now - self.last_received > 2 * heartbeat:
                self._finish(f"missed heartbeats from client, timeout: {heartbeat}s")
                return ConnectionClosed(self.close_reason or "missed heartbeats")
            if now - self.last_sent >= heartbeat / 2:
                self.last_sent = now
                return HEARTBEAT_DUE
        return None

    def next_deadline(self) -> float:
        """When `tick` next has something to do."""
        if self.state == CLOSING:
            return self.last_received + max(self.limits.handshake_timeout, 2 * self.heartbeat)
        if self.state != RUNNING:
            return self.started_at + self.limits.handshake_timeout
        if not self.heartbeat:
            return float("inf")
        return min(self.last_received + 2 * self.heartbeat, self.last_sent + self.heartbeat / 2)


def _parse_credentials(mechanism: str, response: bytes) -> tuple[str, str] | None:
    try:
        if mechanism == "PLAIN":
            parts = response.split(b"\x00")
            if len(parts) != 3 or parts[0]:
                return None
            return parts[1].decode("utf-8"), parts[2].decode("utf-8")
        if mechanism == "AMQPLAIN":
            _, table = decode.field_table(struct.pack(">I", len(response)) + response)
            login, password = table.get("LOGIN"), table.get("PASSWORD")
            if isinstance(login, bytes):
                login = login.decode("utf-8")
            if isinstance(password, bytes):
                password = password.decode("utf-8")
            if isinstance(login, str) and isinstance(password, str):
                return login, password
    except (ValueError, UnicodeDecodeError, struct.error):
        return None
    return None
