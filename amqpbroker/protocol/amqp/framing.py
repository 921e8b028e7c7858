"""Frames: a byte buffer in, complete frames out; methods out as frame bytes.

Owns the frame layer of AMQP 0-9-1 (type, channel, size, payload, frame-end) and the
bridge to pamqp for the methods that are not on the hot path. Lengths are checked
before anything is decoded; pamqp never sees a frame larger than the negotiated limit.
"""

from __future__ import annotations

import struct
from typing import Any

from pamqp import base, commands

from amqpbroker import errors
from amqpbroker.protocol.amqp.fastcodec import encode_method_frame
from amqpbroker.protocol.amqp.spec import (
    FRAME_BODY,
    FRAME_END,
    FRAME_HEADER,
    FRAME_HEARTBEAT,
    FRAME_METHOD,
    FRAME_OVERHEAD,
    split_index,
)
from amqpbroker.values import table_depth

_FRAME_HEADER = struct.Struct(">BHI")  # type, channel, size
_HEAD_SIZE = _FRAME_HEADER.size
_METHOD_INDEX = struct.Struct(">I")
_LENGTH = struct.Struct(">I")
_FIXED_ARGUMENTS = {"octet": 1, "short": 2, "long": 4, "longlong": 8, "timestamp": 8}
_FRAME_TYPES = (FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT)


def _relax_pamqp() -> None:
    """RabbitMQ accepts any UTF-8 name up to 255 bytes; pamqp's validators allow a narrow
    character set and 127 characters. We check names ourselves (`amqpbroker.names`), so
    pamqp's checks are switched off once, at import."""

    def _no_validation(self: Any) -> None:
        return None

    for cls in commands.INDEX_MAPPING.values():
        cls.validate = _no_validation  # type: ignore[attr-defined]


_relax_pamqp()


def erlang_binary(data: bytes) -> str:
    """Render bytes the way RabbitMQ's error texts show them: <<"text">> or <<1,2,3>>."""
    if not data:
        return "<<>>"
    if all(32 <= b < 127 for b in data):
        return '<<"' + data.decode("ascii").replace('"', '\\"') + '">>'
    return "<<" + ",".join(str(b) for b in data[:64]) + (",..." if len(data) > 64 else "") + ">>"


def parse_frames(buffer: bytearray, max_payload: int,
                 max_frames: int = -1) -> tuple[list[tuple[int, int, bytes]], int]:
    """Split complete frames (all, or at most `max_frames`) off the front of `buffer`.

    Returns the frames as (type, channel, payload) and the number of bytes consumed; the
    caller deletes them. Raises a 501 connection error for an oversized frame, an unknown
    frame type or a bad frame-end octet.
    """
    frames: list[tuple[int, int, bytes]] = []
    pos = 0
    end = len(buffer)
    if end < FRAME_OVERHEAD:
        return frames, 0
    data = bytes(buffer)  # one copy per pass; each payload below is one slice of it
    unpack = _FRAME_HEADER.unpack_from
    append = frames.append
    while end - pos >= FRAME_OVERHEAD and len(frames) != max_frames:
        frame_type, channel, size = unpack(data, pos)
        if size > max_payload:
            raise errors.AMQPConnectionError(
                errors.FRAME_ERROR,
                f"type {frame_type}, all octets = <<>>: "
                f"{{frame_too_large,{size},{max_payload}}}",
            )
        stop = pos + _HEAD_SIZE + size
        if end <= stop:
            break
        if frame_type not in _FRAME_TYPES:
            payload = data[pos + _HEAD_SIZE : stop]
            raise errors.AMQPConnectionError(
                errors.FRAME_ERROR,
                f"type {frame_type}, all octets = {erlang_binary(payload)}: unknown_frame",
            )
        if data[stop] != FRAME_END:
            raise errors.AMQPConnectionError(
                errors.FRAME_ERROR,
                f"type {frame_type}, all octets = {erlang_binary(data[pos + _HEAD_SIZE : stop])}"
                f": {{invalid_frame_end_marker,{data[stop]}}}",
            )
        append((frame_type, channel, data[pos + _HEAD_SIZE : stop]))
        pos = stop + 1
    return frames, pos


def method_index(payload: bytes) -> int:
    """The class and method id of a method frame payload as one int (class << 16 | method)."""
    if len(payload) < 4:
        raise errors.AMQPConnectionError(
            errors.FRAME_ERROR, f"cannot decode {erlang_binary(payload)}"
        )
    return _METHOD_INDEX.unpack_from(payload)[0]


def check_arguments(cls: type[base.Frame], payload: bytes, max_depth: int) -> None:
    """Walk a method's arguments by their AMQP types and check every length (and every
    field table's structure and nesting) against the payload: pamqp trusts lengths."""
    pos = 4
    bits = 0
    for name in cls.__slots__:
        kind = cls.amqp_type(name)
        if kind == "bit":
            if bits % 8 == 0:
                pos += 1
            bits += 1
            continue
        bits = 0
        if kind == "shortstr":
            pos += 1 + payload[pos]
        elif kind == "longstr":
            pos += 4 + _LENGTH.unpack_from(payload, pos)[0]
        elif kind == "table":
            if table_depth(payload, pos) > max_depth:
                raise ValueError("field table nested too deeply")
            pos += 4 + _LENGTH.unpack_from(payload, pos)[0]
        else:
            pos += _FIXED_ARGUMENTS[kind]
        if pos > len(payload):
            raise ValueError("argument runs past the end of the frame")


def decode_method(index: int, payload: bytes, max_depth: int = 64) -> base.Frame:
    """Decode a method that is not on the hot path with pamqp, after `check_arguments`."""
    cls: type[base.Frame] | None = commands.INDEX_MAPPING.get(index)
    if cls is None:
        raise errors.AMQPConnectionError(
            errors.NOT_IMPLEMENTED, "unknown method", *split_index(index)
        )
    try:
        check_arguments(cls, payload, max_depth)
    except (ValueError, IndexError, struct.error) as exc:
        raise errors.AMQPConnectionError(
            errors.FRAME_ERROR, f"cannot decode {erlang_binary(payload[4:68])}",
            *split_index(index),
        ) from exc
    method = cls.__new__(cls)
    try:
        method.unmarshal(payload[4:])
    except UnicodeDecodeError as exc:
        raise errors.AMQPConnectionError(errors.FRAME_ERROR, "Malformed UTF-8 in shortstr") from exc
    except (ValueError, TypeError, KeyError, IndexError, struct.error, RecursionError) as exc:
        raise errors.AMQPConnectionError(
            errors.FRAME_ERROR,
            f"cannot decode {erlang_binary(payload[4:68])}",
            *split_index(index),
        ) from exc
    return method


def encode_method(channel: int, method: base.Frame) -> bytes:
    """One method frame, encoded with pamqp."""
    return encode_method_frame(channel, _METHOD_INDEX.pack(method.index) + method.marshal())
