"""The connection state machine: handshake, channel bookkeeping, heartbeats, closing.

Sans-IO, in the manner of h11: `receive_data(bytes, now)` parses and dispatches, output
accumulates in `out` and leaves through `data_to_send(now)`. The broker side is reached
through the `Handler` interface; this module never imports the broker.

Rules (RabbitMQ 3.13 behaviour unless the issue asks for stricter):
    state        accepts                              then
    HEADER       8-byte protocol header               START (sends Connection.Start)
    START        Connection.Start-Ok (PLAIN/AMQPLAIN) TUNE (sends Tune) or CLOSING (403)
    TUNE         Connection.Tune-Ok                   OPEN
    OPEN         Connection.Open                      RUNNING (sends Open-Ok) or CLOSING (530)
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
from collections.abc import Callable
from typing import Any, Protocol

from pamqp import commands, decode

from amqpbroker import __version__, errors
from amqpbroker.protocol import fastcodec
from amqpbroker.protocol.assembler import ChannelAssembler
from amqpbroker.protocol.framing import (
    FRAME_BODY,
    FRAME_HEADER,
    FRAME_HEARTBEAT,
    FRAME_METHOD,
    FRAME_OVERHEAD,
    HEARTBEAT_FRAME,
    PROTOCOL_HEADER,
    decode_method,
    encode_method,
    method_index,
    parse_frames,
)

HEADER, START, TUNE, OPEN, RUNNING, CLOSING, CLOSED = range(7)

# RabbitMQ also accepts the 0-9 and 0-8 headers, answering with their version numbers.
ACCEPTED_HEADERS = {
    PROTOCOL_HEADER: (0, 9),
    b"AMQP\x01\x01\x00\x09": (0, 9),
    b"AMQP\x01\x01\x08\x00": (8, 0),
    b"AMQP\x01\x01\x09\x01": (8, 0),
}
MIN_FRAME_MAX = 4096

BASIC_PUBLISH = 0x003C0028
BASIC_ACK = 0x003C0050
BASIC_REJECT = 0x003C005A
BASIC_NACK = 0x003C0078
CHANNEL_OPEN = 0x0014000A
CHANNEL_CLOSE = 0x00140028
CHANNEL_CLOSE_OK = 0x00140029
CONNECTION_CLOSE = 0x000A0032
CONNECTION_CLOSE_OK = 0x000A0033
CONNECTION_CLASS = 10

_PUBLISH_PREFIX = BASIC_PUBLISH.to_bytes(4, "big")

_FAST_DECODERS: dict[int, Callable[[bytes], Any]] = {
    BASIC_PUBLISH: fastcodec.decode_publish,
    BASIC_ACK: fastcodec.decode_ack,
    BASIC_REJECT: fastcodec.decode_reject,
    BASIC_NACK: fastcodec.decode_nack,
}


class Handler(Protocol):
    """What the connection needs from the broker side."""

    def authenticate(self, mechanism: str, username: str, password: str | None) -> bool:
        """Check a login; `password` is None for EXTERNAL (a verified certificate)."""
    def update_secret(self, username: str, secret: bytes, reason: str) -> None:
        """Connection.Update-Secret; raises ConnectionError_ to refuse the new secret."""
    def open_vhost(self, vhost: str) -> None: ...
    def on_channel_open(self, channel: int) -> None: ...
    def on_channel_closed(self, channel: int) -> None: ...
    def on_method(self, channel: int, index: int, args: Any) -> None: ...
    def on_publish(self, channel: int, args: tuple[str, str, bool, bool], header: bytes,
                   info: fastcodec.HeaderInfo, body: bytes) -> None: ...
    def on_closed(self) -> None: ...


class Limits:
    """The negotiable and fixed limits of one connection."""

    def __init__(self, channel_max: int = 2047, frame_max: int = 131072, heartbeat: int = 60,
                 handshake_timeout: float = 10.0, max_message_size: int = 134217728,
                 pre_auth_frame_max: int = 4096, max_table_depth: int = 64) -> None:
        self.channel_max = channel_max
        self.frame_max = frame_max
        self.heartbeat = heartbeat
        self.handshake_timeout = handshake_timeout
        self.max_message_size = max_message_size
        self.pre_auth_frame_max = pre_auth_frame_max
        self.max_table_depth = max_table_depth


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

    def __init__(self, handler: Handler, capabilities: dict[str, bool], limits: Limits,
                 now: float, external_user: str | None = None) -> None:
        self.handler = handler
        # The common name of a verified TLS client certificate: offers SASL EXTERNAL.
        self.external_user = external_user
        self.capabilities = capabilities
        self.limits = limits
        self.state = HEADER
        self.out: list[bytes] = []
        self.buffer = bytearray()
        self.channel_max = limits.channel_max
        self.frame_max = limits.frame_max
        self.heartbeat = 0
        self.max_payload = limits.pre_auth_frame_max - FRAME_OVERHEAD
        self.channels: dict[int, ChannelAssembler] = {}
        self.closing_channels: set[int] = set()
        self.client_properties: dict[str, Any] = {}
        self.username = ""
        self.mechanism = ""
        self.vhost = ""
        self.started_at = now
        self.last_received = now
        self.last_sent = now
        self.close_reason: str | None = None
        self.hold_publishes = False  # a resource alarm: do not take publishes
        self.paused = False  # a publish is waiting in the buffer for the alarm to clear

    # --- output -------------------------------------------------------------------

    def send_method(self, channel: int, method: Any) -> None:
        self.out.append(encode_method(channel, method))

    def data_to_send(self, now: float) -> bytes:
        out = self.out
        if not out:
            return b""
        self.last_sent = now
        self.out = []
        return out[0] if len(out) == 1 else b"".join(out)

    @property
    def closed(self) -> bool:
        return self.state == CLOSED

    @property
    def client_capabilities(self) -> dict[str, Any]:
        caps = self.client_properties.get("capabilities")
        return caps if isinstance(caps, dict) else {}

    # --- input --------------------------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> None:
        """Parse and dispatch everything complete in `data` (plus what was buffered)."""
        self.last_received = now
        if self.state == CLOSED:
            return
        buffer = self.buffer
        buffer += data
        try:
            if self.state == HEADER:
                if len(buffer) < 8:
                    return
                version = ACCEPTED_HEADERS.get(bytes(buffer[:8]))
                if version is None:
                    self.out.append(PROTOCOL_HEADER)
                    self._finish("bad protocol header")
                    return
                del buffer[:8]
                self._send_start(*version)
            while self.state != CLOSED:
                if self.hold_publishes:
                    self._receive_until_publish()
                    return
                frames, used = self._parse(-1)
                if used:
                    del buffer[:used]
                if not frames:
                    return
                for frame_type, channel, payload in frames:
                    self._frame(frame_type, channel, payload)
                    if self.state == CLOSED:
                        return
                    if self.hold_publishes:
                        break
        except errors.ConnectionError_ as exc:
            if self.state < RUNNING:
                self._finish(exc.reply_text)
            else:
                self.close(exc)
        except errors.HandshakeFailed as exc:
            self._finish(str(exc))

    def _parse(self, max_frames: int) -> tuple[list[tuple[int, int, bytes]], int]:
        """Frames off the buffer; after a framing error the rest of the input is
        meaningless, so it is dropped (the peer's Close-Ok comes in a later read)."""
        try:
            return parse_frames(self.buffer, self.max_payload, max_frames)
        except errors.ConnectionError_:
            self.buffer.clear()
            raise

    def _receive_until_publish(self) -> None:
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
            self._frame(frame_type, channel, payload)

    def resume(self, now: float) -> None:
        """The alarm cleared: process what was held back."""
        self.hold_publishes = False
        self.paused = False
        self.receive_data(b"", now)

    def _frame(self, frame_type: int, channel: int, payload: bytes) -> None:
        if channel and self.state == RUNNING:  # the common case first
            if frame_type == FRAME_METHOD:
                self._channel_method(channel, payload)
                return
            if frame_type != FRAME_HEARTBEAT:
                self._content(frame_type, channel, payload)
                return
        if self.state == CLOSING:
            if frame_type == FRAME_METHOD and channel == 0:
                index = method_index(payload)
                if index == CONNECTION_CLOSE_OK:
                    self._finish(self.close_reason or "closed")
                elif index == CONNECTION_CLOSE:
                    self.send_method(0, commands.Connection.CloseOk())
                    self._finish(self.close_reason or "closed")
            return
        if frame_type == FRAME_HEARTBEAT:
            if channel != 0:
                raise errors.ConnectionError_(
                    errors.UNEXPECTED_FRAME, f"type {FRAME_HEARTBEAT}, all octets = <<>>"
                )
            return
        if channel == 0:
            if frame_type != FRAME_METHOD:
                raise errors.ConnectionError_(
                    errors.UNEXPECTED_FRAME, "expected method frame, got non method frame instead"
                )
            self._connection_method(payload)
            return
        if self.state != RUNNING:
            raise errors.HandshakeFailed("channel frame before the connection was open")
        if frame_type == FRAME_METHOD:
            self._channel_method(channel, payload)
            return
        self._content(frame_type, channel, payload)

    def _content(self, frame_type: int, channel: int, payload: bytes) -> None:
        """A content header or body frame on an open connection."""
        assembler = self.channels.get(channel)
        if assembler is None:
            if channel in self.closing_channels:
                return
            raise errors.ConnectionError_(errors.CHANNEL_ERROR, "expected 'channel.open'")
        if frame_type == FRAME_HEADER:
            done = assembler.content_header(payload)
        else:
            done = assembler.content_body(payload)
        if not done:
            return
        try:
            body = assembler.take_body() if frame_type == FRAME_BODY else b""
            self.handler.on_publish(channel, assembler.args,  # type: ignore[arg-type]
                                    assembler.header, assembler.info,  # type: ignore[arg-type]
                                    body)
        except errors.ChannelError as exc:
            self.close_channel(channel, exc.at(60, 40))
        except errors.ConnectionError_ as exc:
            raise exc.at(60, 40) from None

    def _channel_method(self, channel: int, payload: bytes) -> None:
        index = method_index(payload)
        assembler = self.channels.get(channel)
        if assembler is None:
            if channel in self.closing_channels:
                if index == CHANNEL_CLOSE_OK:
                    self.closing_channels.discard(channel)
                elif index == CHANNEL_CLOSE:
                    self.send_method(channel, commands.Channel.CloseOk())
                    self.closing_channels.discard(channel)
                return
            if index == CHANNEL_OPEN and len(self.channels) >= self.channel_max:
                raise errors.ConnectionError_(
                    errors.NOT_ALLOWED,
                    f"number of channels opened ({len(self.channels)}) has reached the "
                    f"negotiated channel_max ({self.channel_max})",
                )
            if index != CHANNEL_OPEN:
                raise errors.ConnectionError_(
                    errors.CHANNEL_ERROR, "expected 'channel.open'", index >> 16, index & 0xFFFF
                )
            decode_method(index, payload, self.limits.max_table_depth)
            self.channels[channel] = ChannelAssembler(self.limits.max_message_size)
            self.send_method(channel, commands.Channel.OpenOk())
            self.handler.on_channel_open(channel)
            return
        fast = _FAST_DECODERS.get(index)
        if fast is not None:
            try:
                args = fast(payload)
            except ValueError as exc:
                raise errors.ConnectionError_(
                    errors.FRAME_ERROR, "cannot decode method", index >> 16, index & 0xFFFF
                ) from exc
        else:
            args = decode_method(index, payload, self.limits.max_table_depth)
            if index >> 16 == CONNECTION_CLASS:
                raise errors.ConnectionError_(
                    errors.COMMAND_INVALID, "unimplemented method", index >> 16, index & 0xFFFF
                )
        if assembler.method(index, args):
            return
        if index == CHANNEL_CLOSE:
            del self.channels[channel]
            self.send_method(channel, commands.Channel.CloseOk())
            self.handler.on_channel_closed(channel)
            return
        if index == CHANNEL_OPEN:
            raise errors.ConnectionError_(
                errors.CHANNEL_ERROR, "second 'channel.open' seen", 20, 10
            )
        if index == CHANNEL_CLOSE_OK:
            return
        try:
            self.handler.on_method(channel, index, args)
        except errors.ChannelError as exc:
            self.close_channel(channel, exc.at(index >> 16, index & 0xFFFF))
        except errors.ConnectionError_ as exc:
            raise exc.at(index >> 16, index & 0xFFFF) from None

    def close_channel(self, channel: int, error: errors.AMQPError) -> None:
        """Close one channel from the server side (a soft error)."""
        if self.channels.pop(channel, None) is None:
            return
        self.closing_channels.add(channel)
        self.send_method(channel, commands.Channel.Close(
            error.reply_code, error.reply_text, error.class_id, error.method_id))
        self.handler.on_channel_closed(channel)

    # --- connection class ------------------------------------------------------------

    def _send_start(self, major: int, minor: int) -> None:
        self.state = START
        self.send_method(0, commands.Connection.Start(
            version_major=major, version_minor=minor,
            server_properties=server_properties(self.capabilities),
            mechanisms="PLAIN AMQPLAIN" + (" EXTERNAL" if self.external_user else ""),
            locales="en_US",
        ))

    def _connection_method(self, payload: bytes) -> None:
        index = method_index(payload)
        method = decode_method(index, payload, self.limits.max_table_depth)
        if index >> 16 != CONNECTION_CLASS:
            if self.state != RUNNING:
                raise errors.HandshakeFailed("method on channel 0 before the connection was open")
            raise errors.ConnectionError_(
                errors.CHANNEL_ERROR, "unexpected method in connection state running",
                index >> 16, index & 0xFFFF,
            )
        if isinstance(method, commands.Connection.StartOk) and self.state == START:
            self._start_ok(method)
        elif isinstance(method, commands.Connection.TuneOk) and self.state == TUNE:
            self._tune_ok(method)
        elif isinstance(method, commands.Connection.Open) and self.state == OPEN:
            try:
                self.handler.open_vhost(method.virtual_host)
            except errors.ConnectionError_ as exc:
                self.close(exc)
                return
            self.vhost = method.virtual_host
            self.state = RUNNING
            self.max_payload = self.frame_max - FRAME_OVERHEAD
            self.send_method(0, commands.Connection.OpenOk())
        elif isinstance(method, commands.Connection.Close):
            self.send_method(0, commands.Connection.CloseOk())
            self._finish(f"closed by client: {method.reply_code} {method.reply_text}")
        elif isinstance(method, commands.Connection.CloseOk):
            self._finish("closed")
        elif isinstance(method, commands.Connection.UpdateSecret) and self.state == RUNNING:
            secret = method.new_secret
            if isinstance(secret, str):
                secret = secret.encode("utf-8")
            self.handler.update_secret(self.username, secret, method.reason)
            self.send_method(0, commands.Connection.UpdateSecretOk())
        elif self.state != RUNNING:
            raise errors.HandshakeFailed(f"unexpected {method.name} during the handshake")
        else:
            raise errors.ConnectionError_(
                errors.COMMAND_INVALID, "unimplemented method", index >> 16, index & 0xFFFF
            )

    def _start_ok(self, method: commands.Connection.StartOk) -> None:
        props = method.client_properties
        self.client_properties = props if isinstance(props, dict) else {}
        mechanism = method.mechanism
        response = method.response
        if isinstance(response, str):
            response = response.encode("utf-8")
        if mechanism == "EXTERNAL" and self.external_user is not None:
            credentials: tuple[str, str | None] | None = (self.external_user, None)
        else:
            credentials = _parse_credentials(mechanism, response)
        if credentials is None:
            raise errors.HandshakeFailed(f"unsupported mechanism or response: {mechanism}")
        username, password = credentials
        self.mechanism = mechanism
        self.username = username
        if not self.handler.authenticate(mechanism, username, password):
            if not self.client_capabilities.get("authentication_failure_close"):
                raise errors.HandshakeFailed(f"login refused for user {username!r}")
            self.close(errors.login_refused(mechanism))
            return
        self.state = TUNE
        self.send_method(0, commands.Connection.Tune(
            channel_max=self.limits.channel_max, frame_max=self.limits.frame_max,
            heartbeat=self.limits.heartbeat,
        ))

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

    # --- closing and time ---------------------------------------------------------------

    def close(self, error: errors.AMQPError) -> None:
        """Close the connection from the server side with a Connection.Close."""
        if self.state in (CLOSING, CLOSED):
            return
        if self.state == HEADER:
            self._finish(error.reply_text)
            return
        self.send_method(0, commands.Connection.Close(
            error.reply_code, error.reply_text, error.class_id, error.method_id))
        self.close_reason = error.reply_text
        self.state = CLOSING
        self._release()

    def connection_lost(self, reason: str) -> None:
        """The socket is gone (or we dropped it): release everything, send nothing."""
        if self.state != CLOSED:
            self._finish(reason)

    def _finish(self, reason: str) -> None:
        if self.close_reason is None:
            self.close_reason = reason
        self.state = CLOSED
        self._release()

    def _release(self) -> None:
        """Tell the broker side, once, that this connection is over."""
        self.channels.clear()
        self.closing_channels.clear()
        handler, self.handler = self.handler, _Released()
        handler.on_closed()

    def tick(self, now: float) -> bool:
        """Check the deadlines; queue a heartbeat if due. False: drop the connection now."""
        if self.state == CLOSED:
            return False
        if self.state != RUNNING and self.state != CLOSING:
            if now - self.started_at > self.limits.handshake_timeout:
                self._finish("handshake timeout")
                return False
            return True
        if self.state == CLOSING:
            if now - self.last_received > max(self.limits.handshake_timeout, 2 * self.heartbeat):
                self._finish(self.close_reason or "close timeout")
                return False
            return True
        heartbeat = self.heartbeat
        if self.paused:
            self.last_received = now  # we are not reading; its silence is ours
        if heartbeat:
            if now - self.last_received > 2 * heartbeat:
                self._finish(f"missed heartbeats from client, timeout: {heartbeat}s")
                return False
            if now - self.last_sent >= heartbeat / 2:
                self.last_sent = now
                if not self.out:
                    self.out.append(HEARTBEAT_FRAME)
        return True

    def next_deadline(self) -> float:
        """When `tick` next has something to do."""
        if self.state == CLOSING:
            return self.last_received + max(self.limits.handshake_timeout, 2 * self.heartbeat)
        if self.state != RUNNING:
            return self.started_at + self.limits.handshake_timeout
        if not self.heartbeat:
            return float("inf")
        return min(self.last_received + 2 * self.heartbeat, self.last_sent + self.heartbeat / 2)


class _Released:
    """Stands in for the handler once the connection has released the broker side."""

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: None


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
