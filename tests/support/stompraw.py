"""A raw STOMP client over a socket, for input no client library would send: bytes out,
frames in (read with the broker's own frame parser), and waiting for the close."""

from __future__ import annotations

import socket

from amqpbroker.protocol.stomp.frames import Frame, FrameLimits, FrameParser

TIMEOUT = 10.0


class RawStomp:
    """One socket to a STOMP port."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.parser = FrameParser(FrameLimits(max_body=1 << 30))
        self.frames: list[Frame] = []
        self.eof = False

    def __enter__(self) -> RawStomp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def connect(self, version: str = "1.2", **headers: str) -> Frame:
        """CONNECT as guest on `/`; returns the CONNECTED frame."""
        lines = [f"accept-version:{version}", "host:/", "login:guest", "passcode:guest",
                 *(f"{k}:{v}" for k, v in headers.items())]
        self.send(("CONNECT\n" + "\n".join(lines) + "\n\n\x00").encode())
        frame = self.frame()
        assert frame.command == "CONNECTED", frame
        return frame

    def _read(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            self.eof = True
            return
        self.frames.extend(self.parser.feed(data))

    def frame(self) -> Frame:
        """The next frame; AssertionError if the connection closes first."""
        while not self.frames:
            assert not self.eof, "the connection closed"
            self._read()
        return self.frames.pop(0)

    def closed_with_error(self) -> Frame:
        """Read to the end of the stream: the last frame must be an ERROR."""
        while not self.eof:
            self._read()
        assert self.frames and self.frames[-1].command == "ERROR", self.frames
        return self.frames[-1]
