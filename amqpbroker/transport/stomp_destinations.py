"""STOMP destinations as RabbitMQ's STOMP plugin reads them: `/queue/<q>`,
`/amq/queue/<q>`, `/topic/<key>`, `/exchange/<x>[/<pattern>]`, `/temp-queue/<id>`,
`/reply-queue/<q>`, a bare name meaning `/queue/<name>`; where a MESSAGE came from,
written back as a destination; and the names of subscription queues.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from dataclasses import dataclass

QUEUE, AMQ_QUEUE, TOPIC, EXCHANGE, TEMP_QUEUE, REPLY_QUEUE = (
    "queue", "amq/queue", "topic", "exchange", "temp-queue", "reply-queue")
TOPIC_EXCHANGE = "amq.topic"
PREFIXES = ("/queue/", "/amq/queue/", "/topic/", "/exchange/", "/temp-queue/",
            "/reply-queue/")
VALID_TYPES = ("Valid destination types are: /temp-queue, /exchange, /topic, /queue, "
               "/amq/queue, /reply-queue/.\n")


class DestinationError(Exception):
    """An ERROR frame's `message` and body for a destination that cannot be used."""

    def __init__(self, message: str, detail: str) -> None:
        super().__init__(detail)
        self.message = message
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Destination:
    """A parsed destination: its kind and the name (queue, exchange, temp-queue id) and
    routing key it carries."""

    kind: str
    name: str
    key: str = ""
    text: str = ""

    @property
    def publish_target(self) -> tuple[str, str]:
        """Exchange and routing key a SEND publishes with."""
        if self.kind == TOPIC:
            return TOPIC_EXCHANGE, self.key
        if self.kind == EXCHANGE:
            return self.name, self.key
        return "", self.name


def _unescape(name: str) -> str:
    return name.replace("%2F", "/").replace("%2f", "/").replace("%25", "%")


def _escape(name: str) -> str:
    return name.replace("%", "%25").replace("/", "%2F")


def parse(text: str) -> Destination:
    """The destination named by a `destination` header; DestinationError when invalid."""
    if not text.startswith("/"):
        if text:
            return Destination(QUEUE, text, text=text)
        raise DestinationError("Unknown destination", f"'{text}' is not a valid destination.\n"
                               + VALID_TYPES)
    if text.startswith("/reply-queue/"):
        return _named(REPLY_QUEUE, text[len("/reply-queue/"):], text)
    if text.startswith("/amq/queue/"):
        return _named(AMQ_QUEUE, text[len("/amq/queue/"):], text)
    kind, _, rest = text[1:].partition("/")
    if kind in (QUEUE, TEMP_QUEUE):
        return _named(kind, rest, text)
    if kind == TOPIC:
        if not rest:
            raise _invalid(text)
        return Destination(TOPIC, TOPIC_EXCHANGE, _unescape(rest), text)
    if kind == EXCHANGE:
        name, _, key = rest.partition("/")
        if not name or "/" in key:
            raise _invalid(text)
        return Destination(EXCHANGE, _unescape(name), _unescape(key), text)
    raise DestinationError("Unknown destination",
                           f"'{text}' is not a valid destination.\n" + VALID_TYPES)


def _named(kind: str, name: str, text: str) -> Destination:
    if not name or ("/" in name and kind != REPLY_QUEUE):
        raise _invalid(text)
    return Destination(kind, name if kind == REPLY_QUEUE else _unescape(name), text=text)


def _invalid(text: str) -> DestinationError:
    return DestinationError("Invalid destination", f"'{text}' is not a valid destination.\n")


def of_message(exchange: str, routing_key: str) -> str:
    """The `destination` of a MESSAGE: where it was published."""
    if not exchange:
        return "/queue/" + _escape(routing_key)
    if exchange == TOPIC_EXCHANGE:
        return "/topic/" + _escape(routing_key)
    return "/exchange/" + _escape(exchange) + "/" + _escape(routing_key)


def reply_to_header(reply_to: str) -> str:
    """An AMQP reply_to as a STOMP `reply-to`: a destination, as RabbitMQ writes it."""
    if reply_to.startswith(PREFIXES):
        return reply_to
    return "/reply-queue/" + reply_to


# --------------------------------------------------------------------------- queue names


def _erlang_string(text: str) -> bytes:
    """`term_to_binary` of an Erlang string (a list of code points), sans version tag."""
    points = [ord(c) for c in text]
    if not points:
        return b"j"  # NIL_EXT
    if max(points) < 256 and len(points) < 65536:
        return b"k" + struct.pack(">H", len(points)) + bytes(points)  # STRING_EXT
    encoded = b"".join(b"a" + bytes((p,)) if p < 256 else b"b" + struct.pack(">i", p)
                       for p in points)
    return b"l" + struct.pack(">I", len(points)) + encoded + b"j"  # LIST_EXT


def subscription_queue(name: str, subscription_id: str | None) -> str:
    """`stomp-subscription-<22 chars>`: RabbitMQ's name for the queue of a `/topic` or
    `/exchange` subscription, from md5(term_to_binary({Name, Id})). Without an id (a
    non-durable subscription) the id is random, so the name is new each time."""
    ident = subscription_id if subscription_id is not None else os.urandom(16).hex()
    term = b"\x83h\x02" + _erlang_string(name) + _erlang_string(ident)
    digest = hashlib.md5(term, usedforsecurity=False).digest()
    return "stomp-subscription-" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
