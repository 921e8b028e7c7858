"""§2.7 invalid queue arguments (406, channel, 50/10) and the accepted edge values."""

from __future__ import annotations

from typing import Any

import pytest
from amqp_conformance import Chan, byte, double, uniq

INVALID: list[tuple[str, Any, str]] = [
    ("x-max-length", "abc", '"expected integer, got longstr"'),
    ("x-message-ttl", "1000", '"expected integer, got longstr"'),
    ("x-message-ttl", double(1000.0), '"expected integer, got double"'),
    ("x-max-length", -1, "{value_negative,-1}"),
    ("x-max-length-bytes", -1, "{value_negative,-1}"),
    ("x-message-ttl", -1, "{value_negative,-1}"),
    ("x-max-priority", -1, "{value_negative,-1}"),
    ("x-expires", 0, "{value_zero,0}"),
    ("x-expires", -5, "{value_negative,-5}"),
    ("x-message-ttl", 2**40, "{value_too_large,1099511627776}"),
    ("x-max-priority", 256, "{max_value_exceeded,256}"),
    ("x-overflow", "bogus", "invalid_overflow"),
    ("x-queue-type", "bogus", "\"unsupported queue type 'bogus'\""),
    ("x-queue-mode", "bogus", "\"unsupported queue mode 'bogus'\""),
    ("x-single-active-consumer", "yes", "{unacceptable_type,longstr}"),
    ("x-dead-letter-routing-key", "rk", "routing_key_but_no_dlx_defined"),
]


@pytest.mark.parametrize(("arg", "value", "detail"), INVALID,
                         ids=[f"{a}={getattr(v, 'value', v)!r}" for a, v, _ in INVALID])
def test_invalid_queue_argument(ch: Chan, arg: str, value: Any, detail: str) -> None:
    q = uniq("q")
    ch.queue_declare(q, arguments={arg: value}, ok=False)
    ch.expect_channel_close(
        406, f"PRECONDITION_FAILED - invalid arg '{arg}' for queue '{q}' in vhost '/': {detail}",
        50, 10)


def test_dead_letter_exchange_of_wrong_type(ch: Chan) -> None:
    q = uniq("q")
    ch.queue_declare(q, arguments={"x-dead-letter-exchange": byte(5)}, ok=False)
    ch.expect_channel_close(
        406, f"PRECONDITION_FAILED - invalid type 'byte' for arg 'x-dead-letter-exchange' in "
             f"queue '{q}' in vhost '/'", 50, 10)


@pytest.mark.parametrize(("durable", "exclusive", "prop"), [
    (False, False, "non-durable"), (True, True, "exclusive-owner")])
def test_quorum_queue_invalid_property(ch: Chan, durable: bool, exclusive: bool,
                                       prop: str) -> None:
    q = uniq("q")
    ch.queue_declare(q, durable=durable, exclusive=exclusive,
                     arguments={"x-queue-type": "quorum"}, ok=False)
    ch.expect_channel_close(
        406, f"PRECONDITION_FAILED - invalid property '{prop}' for queue '{q}' in vhost '/'",
        50, 10)


@pytest.mark.parametrize(("arg", "value"), [
    ("x-max-length", 0), ("x-message-ttl", 0), ("x-max-priority", 0), ("x-max-priority", 255),
    ("x-overflow", "reject-publish"), ("x-overflow", "reject-publish-dlx"),
    ("x-overflow", "drop-head"), ("x-queue-type", "classic"), ("x-expires", 1000),
    ("x-single-active-consumer", True), ("x-dead-letter-exchange", "dlx"),
])
def test_valid_queue_argument_accepted(ch: Chan, arg: str, value: Any) -> None:
    q = uniq("q")
    assert ch.queue_declare(q, arguments={arg: value}).queue == q


def test_255_byte_queue_name_accepted(ch: Chan) -> None:
    name = uniq("q")
    name += "n" * (255 - len(name))
    assert ch.queue_declare(name).queue == name
