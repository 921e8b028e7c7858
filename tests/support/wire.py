"""Hand-built AMQP 0-9-1 wire encodings for tests, written from the spec and independent
of the broker's own codec: frames from their parts (any frame end), field values and
tables typed exactly, content headers and bodies, and frames read back with pamqp."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from pamqp import base, body, commands, frame, header

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT = 1, 2, 3, 8
FRAME_END = 0xCE


@dataclass(frozen=True)
class Typed:
    """A field value with the type tag it must be written with."""

    tag: str
    value: Any


def byte(v: int) -> Typed:
    return Typed("b", v)


def short(v: int) -> Typed:
    return Typed("s", v)


def signedint(v: int) -> Typed:
    return Typed("I", v)


def long(v: int) -> Typed:
    return Typed("l", v)


def double(v: float) -> Typed:
    return Typed("d", v)


VOID = Typed("V", None)


def shortstr(value: str | bytes) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    assert len(raw) <= 255
    return bytes([len(raw)]) + raw


def longstr(value: str | bytes) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    return struct.pack(">I", len(raw)) + raw


_PACKERS = {"b": ">b", "B": ">B", "s": ">h", "u": ">H", "I": ">i", "i": ">I", "l": ">q",
            "d": ">d", "f": ">f", "T": ">Q"}


def field_value(value: Any) -> bytes:
    """One field value with its tag: ints as `I` (or `l` past 32 bits), floats as `d`,
    strings and bytes as `S`, a `Typed` as its tag says."""
    if isinstance(value, Typed):
        if value.tag == "V":
            return b"V"
        if value.tag == "S":
            return b"S" + longstr(value.value)
        return value.tag.encode() + struct.pack(_PACKERS[value.tag], value.value)
    if isinstance(value, bool):
        return b"t" + bytes([value])
    if isinstance(value, int):
        if -(2**31) <= value < 2**31:
            return b"I" + struct.pack(">i", value)
        return b"l" + struct.pack(">q", value)
    if isinstance(value, float):
        return b"d" + struct.pack(">d", value)
    if isinstance(value, str | bytes):
        return b"S" + longstr(value)
    if value is None:
        return b"V"
    if isinstance(value, dict):
        return b"F" + field_table(value)
    if isinstance(value, list):
        return b"A" + table(b"".join(field_value(v) for v in value))
    raise TypeError(f"cannot encode {value!r}")


def field_table(values: dict[str, Any] | None) -> bytes:
    return table(b"".join(shortstr(k) + field_value(v) for k, v in (values or {}).items()))


def table(encoded: bytes) -> bytes:
    """A field table (or array) from its already encoded entries."""
    return struct.pack(">I", len(encoded)) + encoded


EMPTY_TABLE = table(b"")


def nested_table(depth: int) -> bytes:
    """`depth` tables, each holding the next under the key `a`, built in linear time."""
    inner = EMPTY_TABLE
    level = b"\x01aF"  # key "a", tag F (field table)
    sizes = [len(inner) + (len(level) + 4) * i for i in range(depth + 1)]
    parts = [struct.pack(">I", sizes[i] - 4) + level for i in range(depth, 0, -1)]
    return b"".join(parts) + inner


def bits(*flags: bool) -> bytes:
    return bytes([sum(1 << i for i, flag in enumerate(flags) if flag)])


def raw_frame(frame_type: int, channel: int, payload: bytes, end: int = FRAME_END) -> bytes:
    """One frame from its parts, with any frame-end octet."""
    return struct.pack(">BHI", frame_type, channel, len(payload)) + payload + bytes([end])


def method_payload(class_id: int, method_id: int, args: bytes = b"") -> bytes:
    return struct.pack(">HH", class_id, method_id) + args


def method_frame(channel: int, class_id: int, method_id: int, args: bytes = b"") -> bytes:
    """A method frame from its ids and its encoded arguments."""
    return raw_frame(FRAME_METHOD, channel, method_payload(class_id, method_id, args))


def pamqp_frame(channel: int, method: Any) -> bytes:
    """A method (or any pamqp frame object) encoded by pamqp."""
    return frame.marshal(method, channel)


def header_frame(channel: int, body_size: int, headers: dict[str, Any] | None = None,
                 class_id: int = 60) -> bytes:
    """A content header carrying only (optionally) the headers property, typed by hand."""
    if headers is None:
        props = struct.pack(">H", 0)
    else:
        props = struct.pack(">H", 0x2000) + field_table(headers)
    return raw_frame(FRAME_HEADER, channel, struct.pack(">HHQ", class_id, 0, body_size) + props)


def body_frame(channel: int, data: bytes) -> bytes:
    return raw_frame(FRAME_BODY, channel, data)


def heartbeat_frame(channel: int = 0) -> bytes:
    return raw_frame(FRAME_HEARTBEAT, channel, b"")


def content_frames(channel: int, data: bytes, frame_max: int = 131072,
                   properties: commands.Basic.Properties | None = None) -> bytes:
    """A content header frame (pamqp) and the body frames, split at frame_max - 8."""
    out = [frame.marshal(header.ContentHeader(0, len(data), properties), channel)]
    chunk = frame_max - 8
    for start in range(0, len(data), chunk):
        out.append(frame.marshal(body.ContentBody(data[start:start + chunk]), channel))
    return b"".join(out)


def read_frames(data: bytes) -> list[tuple[int, Any]]:
    """Every frame in `data` as (channel, pamqp object); the data must hold whole frames."""
    frames = []
    while data:
        used, channel, value = frame.unmarshal(data)
        frames.append((channel, value))
        data = data[used:]
    return frames


def methods(data: bytes) -> list[tuple[int, Any]]:
    """Only the method frames of `data`, as (channel, method)."""
    return [(ch, f) for ch, f in read_frames(data) if isinstance(f, base.Frame)]
