"""Per-channel command assembly: method [+ content header + body frames] -> one command.

A three-state machine, as RabbitMQ's rabbit_command_assembler: expecting a method, a
content header, or body frames. Only Basic.Publish carries content from a client.
"""

from __future__ import annotations

from typing import Any

from amqpbroker import errors
from amqpbroker.protocol.amqp.fastcodec import HeaderInfo, PublishArgs, decode_publish, scan_header
from amqpbroker.protocol.amqp.spec import BASIC_PUBLISH, CLASS_BASIC, METHOD_BASIC_PUBLISH

_BASIC_CLASS_BYTES = CLASS_BASIC.to_bytes(2, "big")

EXPECT_METHOD = 0
EXPECT_HEADER = 1
EXPECT_BODY = 2


def _unexpected(detail: str) -> errors.AMQPConnectionError:
    return errors.AMQPConnectionError(errors.UNEXPECTED_FRAME, detail)


class ChannelAssembler:
    """Collects the frames of one channel into complete publishes."""

    __slots__ = ("args", "body_size", "discard", "header", "info", "max_message_size", "parts",
                 "received", "state")

    def __init__(self, max_message_size: int) -> None:
        self.max_message_size = max_message_size
        self.state = EXPECT_METHOD
        self.args: PublishArgs | None = None
        self.header = b""
        self.info: HeaderInfo | None = None
        self.parts: list[bytes] = []
        self.body_size = 0
        self.received = 0
        self.discard = False

    def method(self, index: int, args: Any) -> bool:
        """Take a method; return True when it opens a content-bearing command."""
        if self.state == EXPECT_HEADER:
            raise _unexpected(
                "expected content header for class 60, got non content header frame instead"
            ).at(CLASS_BASIC, METHOD_BASIC_PUBLISH)
        if self.state == EXPECT_BODY:
            raise _unexpected("expected content body, got non content body frame instead")
        if index == BASIC_PUBLISH:
            self.state = EXPECT_HEADER
            self.args = args
            return True
        return False

    def whole_publish(self, method: bytes, header: bytes,
                      body: bytes) -> tuple[PublishArgs, HeaderInfo] | None:
        """A Basic.Publish whose method, header and one body frame arrived together (the
        common case), taken in one step: its arguments and header info, or None when it
        is anything but well-formed and complete, so the frames go one by one (and fail
        as they would)."""
        if self.state != EXPECT_METHOD:
            return None
        try:
            args = decode_publish(method)
            info = scan_header(header)
        except ValueError:
            return None
        if not 0 < info.body_size == len(body) <= self.max_message_size:
            return None
        return args, info

    def content_header(self, payload: bytes) -> bool:
        """Take a content header; return True when the command is complete (empty body)."""
        if self.state != EXPECT_HEADER:
            if self.state == EXPECT_BODY:
                raise _unexpected("expected content body, got non content body frame instead")
            raise _unexpected("expected method frame, got non method frame instead")
        if len(payload) >= 2 and payload[0:2] != _BASIC_CLASS_BYTES:
            class_id = int.from_bytes(payload[0:2], "big")
            raise _unexpected(
                f"expected content header for class 60, got one for class {class_id} instead"
            )
        try:
            info = scan_header(payload)
        except ValueError as exc:
            raise errors.AMQPConnectionError(
                errors.FRAME_ERROR, "cannot decode content header", CLASS_BASIC,
                METHOD_BASIC_PUBLISH,
            ) from exc
        self.header = payload
        self.info = info
        self.body_size = info.body_size
        self.received = 0
        self.discard = info.body_size > self.max_message_size
        if info.body_size == 0:
            self.state = EXPECT_METHOD
            return True
        self.state = EXPECT_BODY
        return False

    def content_body(self, payload: bytes) -> bool:
        """Take a body frame; return True when the body is complete."""
        if self.state != EXPECT_BODY:
            raise _unexpected("expected method frame, got non method frame instead")
        self.received += len(payload)
        if self.received > self.body_size:
            raise _unexpected(
                f"content body longer than declared: {self.received} > {self.body_size}"
            )
        if not self.discard:
            self.parts.append(payload)
        if self.received == self.body_size:
            self.state = EXPECT_METHOD
            return True
        return False

    def take_body(self) -> bytes:
        """The completed body; raises 406 when it was over the message size limit."""
        if self.discard:
            self.discard = False
            raise errors.message_too_large(self.body_size, self.max_message_size).at(
                CLASS_BASIC, METHOD_BASIC_PUBLISH)
        parts = self.parts
        self.parts = []
        return parts[0] if len(parts) == 1 else b"".join(parts)
