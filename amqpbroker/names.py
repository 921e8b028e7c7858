"""Name rules: RabbitMQ's reserved prefixes and the server-generated names.

Names are short strings: UTF-8, at most 255 bytes (the codec enforces both). `amq.` is
reserved for the broker (case-sensitive, as RabbitMQ).
"""

from __future__ import annotations

import base64
import os

RESERVED_PREFIX = "amq."
DEFAULT_EXCHANGE = ""
SERVER_NAMED_QUEUE_PREFIX = "amq.gen-"
CONSUMER_TAG_PREFIX = "amq.ctag-"
REPLY_TO = "amq.rabbitmq.reply-to"  # direct reply-to's pseudo-queue
REPLY_TO_PREFIX = REPLY_TO + "."  # ... and the addresses it hands out


def is_reserved(name: str) -> bool:
    return name.startswith(RESERVED_PREFIX)


def _random22() -> str:
    return base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode("ascii")


def server_named_queue() -> str:
    """`amq.gen-` and 22 base64url characters, 30 in total, as RabbitMQ."""
    return SERVER_NAMED_QUEUE_PREFIX + _random22()


def consumer_tag() -> str:
    """`amq.ctag-` and 22 base64url characters, 31 in total, as RabbitMQ."""
    return CONSUMER_TAG_PREFIX + _random22()
