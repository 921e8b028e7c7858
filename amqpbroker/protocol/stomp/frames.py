"""STOMP frames as bytes: parsing a stream into `Frame`s and encoding them.

A frame is a command line, header lines, a blank line and a body ended by NUL; the body
is `content-length` bytes when that header is given (binary-safe), else everything up
to the first NUL. Lines end in LF or CR LF; EOLs between frames are heart-beats.

Header escaping depends on the version: 1.2 escapes `\\`, LF, CR and `:`; 1.1 all but
CR; 1.0 none. CONNECT and CONNECTED frames are never escaped (the version is not known
yet). A repeated header keeps its first value. The parser enforces the sizes in
`FrameLimits` and raises `FrameError` (with a short message and a detail) for anything
malformed; it then stays broken, since the stream has lost its framing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

V10, V11, V12 = "1.0", "1.1", "1.2"
VERSIONS = (V10, V11, V12)
HEARTBEAT = b"\n"

_NUL = 0
_UNESCAPE = {"\\\\": "\\", "\\n": "\n", "\\c": ":", "\\r": "\r"}
_ESCAPE_12 = str.maketrans({"\\": "\\\\", "\n": "\\n", ":": "\\c", "\r": "\\r"})
_ESCAPE_11 = str.maketrans({"\\": "\\\\", "\n": "\\n", ":": "\\c"})
_UNESCAPED_COMMANDS = ("CONNECT", "STOMP", "CONNECTED")


class FrameError(Exception):
    """Malformed input: `message` is the ERROR frame's `message` header, `detail` its
    body."""

    def __init__(self, message: str, detail: str) -> None:
        super().__init__(f"{message}: {detail}")
        self.message = message
        self.detail = detail


@dataclass(frozen=True)
class FrameLimits:
    """Sizes one connection may send: the header block (command line included), the
    number of headers and the body."""

    max_header_bytes: int = 64 * 1024
    max_headers: int = 1000
    max_body: int = 128 * 1024 * 1024


@dataclass(slots=True)
class Frame:
    """One frame: its command, headers (first value of each name, in wire order) and
    body."""

    command: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


# --------------------------------------------------------------------------- escaping


def unescape(value: str, version: str) -> str:
    """A header name or value as sent in `version`; FrameError for an undefined escape
    (or a CR escape before 1.2)."""
    if version == V10 or "\\" not in value:
        return value
    parts: list[str] = []
    start = 0
    while True:
        slash = value.find("\\", start)
        if slash < 0:
            parts.append(value[start:])
            return "".join(parts)
        sequence = value[slash:slash + 2]
        char = _UNESCAPE.get(sequence)
        if char is None or (sequence == "\\r" and version == V11):
            raise FrameError("Bad header", f"undefined escape sequence {sequence!r} in header")
        parts.append(value[start:slash])
        parts.append(char)
        start = slash + 2


def escape(value: str, version: str) -> str:
    """A header name or value for the wire in `version` (1.0: unchanged)."""
    if version == V12:
        return value.translate(_ESCAPE_12)
    if version == V11:
        return value.translate(_ESCAPE_11)
    return value


def _unescapable(value: str) -> bool:
    """Whether `value` can be sent without escapes (in 1.0, CONNECT and CONNECTED)."""
    return "\n" not in value and "\r" not in value


# --------------------------------------------------------------------------- encoding


def header_lines(headers: Iterable[tuple[str, str]], version: str, *,
                 raw: bool = False) -> bytes:
    """`name:value` lines, each ending in LF, escaped for `version` (`raw`: not at all,
    as in CONNECT and CONNECTED). Headers the version cannot carry (unescaped: a line
    end, or a colon in the name; in 1.1: a CR) are left out."""
    lines: list[str] = []
    for name, value in headers:
        if raw or version == V10:
            if not (_unescapable(name) and _unescapable(value)) or ":" in name:
                continue
            lines.append(name + ":" + value + "\n")
        elif version == V11 and ("\r" in name or "\r" in value):
            continue  # 1.1 cannot escape CR, and a CR before the LF reads as a line end
        else:
            lines.append(escape(name, version) + ":" + escape(value, version) + "\n")
    return "".join(lines).encode("utf-8")


def encode(command: str, headers: Iterable[tuple[str, str]], body: bytes = b"",
           version: str = V12) -> bytes:
    """A frame as bytes, its headers escaped for `version`. No `content-length` is
    added."""
    lines = header_lines(headers, version, raw=command in _UNESCAPED_COMMANDS)
    return command.encode("utf-8") + b"\n" + lines + b"\n" + body + b"\x00"


# --------------------------------------------------------------------------- parsing


class FrameParser:
    """Bytes in, complete frames out. `version` sets the header escaping of every frame
    but CONNECT and STOMP; the connection sets it once negotiated."""

    def __init__(self, limits: FrameLimits | None = None, version: str = V12) -> None:
        self.limits = limits or FrameLimits()
        self.version = version
        self.buffer = bytearray()
        self.heartbeats = 0  # EOLs seen between frames
        self._scanned = 0  # bytes of an incomplete frame already searched for its NUL

    def feed(self, data: bytes) -> Iterator[Frame]:
        """Buffer `data` and yield every frame it completes, in order; raises
        FrameError at the first malformed one."""
        buffer = self.buffer
        buffer += data
        pos = 0
        try:
            while True:
                pos = self._skip_eols(pos)
                if pos >= len(buffer):
                    break
                parsed = self._frame(pos)
                if parsed is None:
                    break
                frame, pos = parsed
                yield frame
        finally:
            del buffer[:pos]

    def _skip_eols(self, pos: int) -> int:
        buffer = self.buffer
        end = len(buffer)
        while pos < end:
            byte = buffer[pos]
            if byte == 10:
                self.heartbeats += 1
                pos += 1
            elif byte == 13 and pos + 1 < end and buffer[pos + 1] == 10:
                self.heartbeats += 1
                pos += 2
            elif byte == 13 and pos + 1 == end:
                break  # the LF may follow in the next read
            else:
                break
        return pos

    def _frame(self, pos: int) -> tuple[Frame, int] | None:
        """The frame starting at `pos` and the position after it; None: incomplete."""
        buffer = self.buffer
        limits = self.limits
        head_end, body_start = _header_block(buffer, pos, limits.max_header_bytes)
        if head_end < 0:
            if len(buffer) - pos > limits.max_header_bytes:
                raise FrameError("Frame too large", "the frame's headers exceed "
                                 f"{limits.max_header_bytes} bytes")
            return None
        frame = self._head(bytes(buffer[pos:head_end]))
        length_text = frame.headers.get("content-length")
        if length_text is not None:
            length = _content_length(length_text, limits.max_body)
            end = body_start + length
            if len(buffer) <= end:
                return None
            if buffer[end] != _NUL:
                raise FrameError("Bad frame", "the body is not followed by NUL after "
                                 f"content-length {length} bytes")
        else:
            end = buffer.find(b"\x00", max(body_start, pos + self._scanned))
            if end < 0:
                if len(buffer) - body_start > limits.max_body:
                    raise FrameError("Frame too large",
                                     f"the body exceeds {limits.max_body} bytes")
                self._scanned = len(buffer) - pos  # an incomplete frame starts the buffer
                return None
            self._scanned = 0
            if end - body_start > limits.max_body:
                raise FrameError("Frame too large", f"the body exceeds {limits.max_body} bytes")
        frame.body = bytes(buffer[body_start:end])
        return frame, end + 1

    def _head(self, block: bytes) -> Frame:
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError:
            raise FrameError("Bad frame", "the frame's headers are not UTF-8") from None
        lines = text.split("\n")
        command = lines[0].rstrip("\r")
        if not command:
            raise FrameError("Bad frame", "the frame has no command")
        if len(lines) - 1 > self.limits.max_headers:
            raise FrameError("Frame too large",
                             f"the frame has more than {self.limits.max_headers} headers")
        version = V10 if command in _UNESCAPED_COMMANDS else self.version
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line.endswith("\r"):
                line = line[:-1]
            name, colon, value = line.partition(":")
            if not colon:
                raise FrameError("Bad header", f"header line {line[:100]!r} has no colon")
            name = unescape(name, version)
            if name not in headers:
                headers[name] = unescape(value, version)
        return Frame(command, headers)


def _header_block(buffer: bytearray, pos: int, limit: int) -> tuple[int, int]:
    """Where the header block starting at `pos` ends (before its blank line) and the
    body begins; (-1, -1) while the blank line has not arrived."""
    stop = min(len(buffer), pos + limit + 4)
    lf = buffer.find(b"\n\n", pos, stop)
    crlf = buffer.find(b"\n\r\n", pos, stop)
    if lf < 0 and crlf < 0:
        return -1, -1
    if crlf < 0 or (0 <= lf < crlf):
        return lf, lf + 2
    return crlf, crlf + 3


def _content_length(text: str, limit: int) -> int:
    if not text.isascii() or not text.isdigit():
        raise FrameError("Invalid content-length", f"content-length {text[:50]!r} is not a "
                         "non-negative integer")
    length = int(text)
    if length > limit:
        raise FrameError("Frame too large", f"content-length {length} exceeds {limit} bytes")
    return length
