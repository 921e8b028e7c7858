"""Unit tests for the per-channel command assembler (method, content header, body)."""

from __future__ import annotations

import pytest
from helpers import header_payload
from pamqp import commands

from amqpbroker import errors
from amqpbroker.protocol.amqp.assembler import (
    BASIC_PUBLISH,
    EXPECT_BODY,
    EXPECT_HEADER,
    EXPECT_METHOD,
    ChannelAssembler,
)

ARGS = ("amq.direct", "key", False, False)
QUEUE_DECLARE = commands.Queue.Declare.index


def started(max_size: int = 1 << 20) -> ChannelAssembler:
    assembler = ChannelAssembler(max_size)
    assert assembler.method(BASIC_PUBLISH, ARGS) is True
    assert assembler.state == EXPECT_HEADER
    return assembler


def test_non_content_method_passes_through() -> None:
    assembler = ChannelAssembler(100)
    assert assembler.method(QUEUE_DECLARE, object()) is False
    assert assembler.state == EXPECT_METHOD


def test_publish_over_several_body_frames() -> None:
    assembler = started()
    props = commands.Basic.Properties(content_type="text/plain", delivery_mode=2, priority=4,
                                      expiration="1000", headers={"h": 1})
    head = header_payload(12, props)
    assert assembler.content_header(head) is False
    assert assembler.state == EXPECT_BODY
    assert assembler.content_body(b"hell") is False
    assert assembler.content_body(b"o wo") is False
    assert assembler.content_body(b"rld!") is True
    assert assembler.state == EXPECT_METHOD
    assert assembler.take_body() == b"hello world!"
    assert assembler.args == ARGS
    assert assembler.header == head
    info = assembler.info
    assert info is not None
    assert (info.body_size, info.delivery_mode, info.priority, info.expiration) == (
        12, 2, 4, "1000")
    assert info.headers_span is not None


def test_single_body_frame() -> None:
    assembler = started()
    assembler.content_header(header_payload(3))
    assert assembler.content_body(b"abc") is True
    assert assembler.take_body() == b"abc"


def test_empty_body_completes_at_the_header() -> None:
    assembler = started()
    assert assembler.content_header(header_payload(0)) is True
    assert assembler.state == EXPECT_METHOD
    assert assembler.take_body() == b""
    # and the next command starts cleanly
    assert assembler.method(BASIC_PUBLISH, ARGS) is True


def test_empty_body_frames_do_not_complete_early() -> None:
    assembler = started()
    assembler.content_header(header_payload(2))
    assert assembler.content_body(b"") is False
    assert assembler.content_body(b"ab") is True
    assert assembler.take_body() == b"ab"


def test_consecutive_publishes_do_not_leak_body_parts() -> None:
    assembler = started()
    assembler.content_header(header_payload(4))
    assembler.content_body(b"ab")
    assembler.content_body(b"cd")
    assert assembler.take_body() == b"abcd"
    assembler.method(BASIC_PUBLISH, ("", "other", True, False))
    assembler.content_header(header_payload(2))
    assembler.content_body(b"xy")
    assert assembler.take_body() == b"xy"
    assert assembler.args == ("", "other", True, False)


def test_method_where_header_due() -> None:
    assembler = started()
    with pytest.raises(errors.AMQPConnectionError) as info:
        assembler.method(QUEUE_DECLARE, object())
    err = info.value
    assert err.reply_code == 505
    assert err.reply_text == ("UNEXPECTED_FRAME - expected content header for class 60, "
                              "got non content header frame instead")
    assert (err.class_id, err.method_id) == (60, 40)


def test_method_where_body_due() -> None:
    assembler = started()
    assembler.content_header(header_payload(5))
    assembler.content_body(b"ab")
    with pytest.raises(errors.AMQPConnectionError) as info:
        assembler.method(BASIC_PUBLISH, ARGS)
    assert info.value.reply_code == 505
    assert info.value.reply_text == (
        "UNEXPECTED_FRAME - expected content body, got non content body frame instead")


def test_body_with_no_method() -> None:
    assembler = ChannelAssembler(100)
    with pytest.raises(errors.AMQPConnectionError) as info:
        assembler.content_body(b"abc")
    assert info.value.reply_code == 505
    assert info.value.reply_text == (
        "UNEXPECTED_FRAME - expected method frame, got non method frame instead")


def test_header_with_no_method() -> None:
    assembler = ChannelAssembler(100)
    with pytest.raises(errors.AMQPConnectionError) as info:
        assembler.content_header(header_payload(1))
    assert info.value.reply_code == 505
    assert info.value.reply_text == (
        "UNEXPECTED_FRAME - expected method frame, got non method frame instead")


def test_header_after_a_non_content_method() -> None:
    assembler = ChannelAssembler(100)
    assembler.method(QUEUE_DECLARE, object())
    with pytest.raises(errors.AMQPConnectionError) as info:
        assembler.content_header(header_payload(1))
    assert info.value.reply_code == 505


def test_header_of_wrong_class() -> None:
    assembler = started()
    with pytest.raises(errors.AMQPConnectionError) as info:
        assembler.content_header(header_payload(1, class_id=50))
    assert info.value.reply_code == 505
    assert info.value.reply_text == ("UNEXPECTED_FRAME - expected content header for class 60, "
                                     "got one for class 50 instead")


def test_body_longer_than_declared() -> None:
    assembler = started()
    assembler.content_header(header_payload(3))
    with pytest.raises(errors.AMQPConnectionError) as info:
        assembler.content_body(b"abcd")
    assert info.value.reply_code == 505


def test_body_longer_than_declared_across_frames() -> None:
    assembler = started()
    assembler.content_header(header_payload(3))
    assert assembler.content_body(b"ab") is False
    with pytest.raises(errors.AMQPConnectionError) as info:
        assembler.content_body(b"cd")
    assert info.value.reply_code == 505


def test_truncated_header_is_a_frame_error() -> None:
    assembler = started()
    with pytest.raises(errors.AMQPConnectionError) as info:
        assembler.content_header(b"\x00\x3c\x00\x00")
    assert info.value.reply_code == 501


def test_message_over_max_size_fails_after_the_body() -> None:
    assembler = started(max_size=10)
    assert assembler.content_header(header_payload(11)) is False  # no error yet
    assert assembler.content_body(b"x" * 6) is False
    assert assembler.content_body(b"y" * 5) is True
    with pytest.raises(errors.ChannelError) as info:
        assembler.take_body()
    err = info.value
    assert err.reply_code == 406
    assert err.reply_text == (
        "PRECONDITION_FAILED - message size 11 is larger than configured max size 10")
    assert (err.class_id, err.method_id) == (60, 40)
    # the assembler is usable again, and kept nothing of the discarded body
    assert assembler.state == EXPECT_METHOD
    assert assembler.method(BASIC_PUBLISH, ARGS) is True
    assembler.content_header(header_payload(10))
    assert assembler.content_body(b"z" * 10) is True
    assert assembler.take_body() == b"z" * 10


def test_message_at_max_size_is_accepted() -> None:
    assembler = started(max_size=10)
    assembler.content_header(header_payload(10))
    assert assembler.content_body(b"0123456789") is True
    assert assembler.take_body() == b"0123456789"


def test_huge_declared_size_gets_no_reaction_at_the_header() -> None:
    """RabbitMQ checks the size after the body; a header declaring 2^40 bytes is quiet."""
    assembler = started(max_size=10)
    assert assembler.content_header(header_payload(1 << 40)) is False
    assert assembler.state == EXPECT_BODY
    assert assembler.content_body(b"x" * 100) is False
    assert assembler.parts == []
