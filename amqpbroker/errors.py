"""AMQP errors as values: reply code, reply text, class and method id.

This module is the one place that holds RabbitMQ's exact error texts. A handler raises
`ChannelError` (the channel is closed) or `AMQPConnectionError` (the connection is closed);
the connection's owner fills in the class and method id of the command being handled and
turns the error into the Close frame.
"""

from __future__ import annotations

import math
from decimal import Decimal

REPLY_NAMES = {
    200: "OK",
    311: "CONTENT_TOO_LARGE",
    312: "NO_ROUTE",
    313: "NO_CONSUMERS",
    320: "CONNECTION_FORCED",
    402: "INVALID_PATH",
    403: "ACCESS_REFUSED",
    404: "NOT_FOUND",
    405: "RESOURCE_LOCKED",
    406: "PRECONDITION_FAILED",
    501: "FRAME_ERROR",
    502: "SYNTAX_ERROR",
    503: "COMMAND_INVALID",
    504: "CHANNEL_ERROR",
    505: "UNEXPECTED_FRAME",
    506: "RESOURCE_ERROR",
    530: "NOT_ALLOWED",
    540: "NOT_IMPLEMENTED",
    541: "INTERNAL_ERROR",
}

CONNECTION_FORCED = 320
ACCESS_REFUSED = 403
NOT_FOUND = 404
RESOURCE_LOCKED = 405
PRECONDITION_FAILED = 406
FRAME_ERROR = 501
SYNTAX_ERROR = 502
COMMAND_INVALID = 503
CHANNEL_ERROR = 504
UNEXPECTED_FRAME = 505
NOT_ALLOWED = 530
NOT_IMPLEMENTED = 540
INTERNAL_ERROR = 541


def _shortstr(text: str) -> str:
    """Reply texts are short strings: cut at 255 bytes with '...', as RabbitMQ does."""
    encoded = text.encode("utf-8")
    if len(encoded) <= 255:
        return text
    return encoded[:252].decode("utf-8", "ignore") + "..."


class AMQPError(Exception):
    """An error the peer is told about with a Close frame."""

    def __init__(self, reply_code: int, detail: str, class_id: int = 0, method_id: int = 0):
        self.reply_code = reply_code
        self.reply_text = _shortstr(f"{REPLY_NAMES[reply_code]} - {detail}")
        self.class_id = class_id
        self.method_id = method_id
        super().__init__(self.reply_text)

    def at(self, class_id: int, method_id: int) -> AMQPError:
        """Fill in the method that caused the error, unless already set."""
        if not self.class_id and not self.method_id:
            self.class_id, self.method_id = class_id, method_id
        return self


class ChannelError(AMQPError):
    """A soft error: the channel is closed, the connection stays."""


class AMQPConnectionError(AMQPError):
    """A hard error: the whole connection is closed."""


class HandshakeFailed(Exception):
    """The handshake failed in a way RabbitMQ answers by dropping the socket."""


# --- RabbitMQ's texts -------------------------------------------------------------------


def _q(name: str, vhost: str) -> str:
    return f"queue '{name}' in vhost '{vhost}'"


def _x(name: str, vhost: str) -> str:
    return f"exchange '{name}' in vhost '{vhost}'"


def queue_not_found(name: str, vhost: str) -> ChannelError:
    return ChannelError(NOT_FOUND, f"no {_q(name, vhost)}")


def exchange_not_found(name: str, vhost: str) -> ChannelError:
    return ChannelError(NOT_FOUND, f"no {_x(name, vhost)}")


def queue_locked(name: str, vhost: str) -> ChannelError:
    return ChannelError(
        RESOURCE_LOCKED,
        f"cannot obtain exclusive access to locked {_q(name, vhost)}. It could be originally "
        "declared on another connection or the exclusive property value does not match that "
        "of the original declaration.",
    )


def inequivalent_arg(arg: str, kind: str, name: str, vhost: str, received: str,
                     current: str) -> ChannelError:
    return ChannelError(
        PRECONDITION_FAILED,
        f"inequivalent arg '{arg}' for {kind} '{name}' in vhost '{vhost}': "
        f"received {received} but current is {current}",
    )


def default_exchange_refused() -> ChannelError:
    return ChannelError(ACCESS_REFUSED, "operation not permitted on the default exchange")


def reserved_name(kind: str, name: str) -> ChannelError:
    return ChannelError(ACCESS_REFUSED, f"{kind} name '{name}' contains reserved prefix 'amq.*'")


def system_exchange_delete(name: str, vhost: str) -> ChannelError:
    return ChannelError(
        ACCESS_REFUSED, f"deletion of system exchange '{name}' in vhost '{vhost}' not allowed"
    )


def unknown_exchange_type(type_: str) -> AMQPConnectionError:
    return AMQPConnectionError(COMMAND_INVALID, f"unknown exchange type '{type_}'")


def queue_in_use(name: str, vhost: str) -> ChannelError:
    return ChannelError(PRECONDITION_FAILED, f"{_q(name, vhost)} in use")


def queue_not_empty(name: str, vhost: str) -> ChannelError:
    return ChannelError(PRECONDITION_FAILED, f"{_q(name, vhost)} not empty")


def exchange_in_use(name: str, vhost: str) -> ChannelError:
    return ChannelError(PRECONDITION_FAILED, f"{_x(name, vhost)} in use")


def internal_exchange_publish(name: str, vhost: str) -> ChannelError:
    return ChannelError(ACCESS_REFUSED, f"cannot publish to internal {_x(name, vhost)}")


def exclusive_consume(name: str, vhost: str) -> ChannelError:
    return ChannelError(ACCESS_REFUSED, f"{_q(name, vhost)} in exclusive use")


def reused_consumer_tag(tag: str) -> AMQPConnectionError:
    return AMQPConnectionError(NOT_ALLOWED, f"attempt to reuse consumer tag '{tag}'")


def unknown_delivery_tag(tag: int) -> ChannelError:
    return ChannelError(PRECONDITION_FAILED, f"unknown delivery tag {tag}")


def invalid_queue_arg(arg: str, name: str, vhost: str, detail: str) -> ChannelError:
    return ChannelError(
        PRECONDITION_FAILED, f"invalid arg '{arg}' for {_q(name, vhost)}: {detail}"
    )


def invalid_x_match(value: object) -> ChannelError:
    return ChannelError(
        PRECONDITION_FAILED,
        f'Invalid x-match field value <<"{value}">>; expected all, any, all-with-x, '
        "or any-with-x",
    )


def not_implemented(detail: str) -> AMQPConnectionError:
    return AMQPConnectionError(NOT_IMPLEMENTED, detail)


def login_refused(mechanism: str) -> AMQPConnectionError:
    return AMQPConnectionError(
        ACCESS_REFUSED,
        f"Login was refused using authentication mechanism {mechanism}. "
        "For details see the broker logfile.",
    )


def secret_refused() -> AMQPConnectionError:
    return AMQPConnectionError(NOT_ALLOWED, "New secret was refused by one of the backends", 10, 70)


def vhost_not_found(vhost: str) -> AMQPConnectionError:
    return AMQPConnectionError(NOT_ALLOWED, f"vhost {vhost} not found", 10, 40)


def message_too_large(size: int, limit: int) -> ChannelError:
    return ChannelError(
        PRECONDITION_FAILED,
        f"message size {size} is larger than configured max size {limit}",
    )


def unsupported_queue_arg(arg: str, name: str, vhost: str, queue_type: str) -> ChannelError:
    return ChannelError(PRECONDITION_FAILED, f"invalid arg '{arg}' for {_q(name, vhost)} of "
                                             f"queue type {queue_type}")


def invalid_arg_type(type_word: str, arg: str, name: str, vhost: str) -> ChannelError:
    return ChannelError(
        PRECONDITION_FAILED, f"invalid type '{type_word}' for arg '{arg}' in {_q(name, vhost)}"
    )


def invalid_queue_property(prop: str, name: str, vhost: str) -> ChannelError:
    return ChannelError(PRECONDITION_FAILED, f"invalid property '{prop}' for {_q(name, vhost)}")


def invalid_expiration(value: str, detail: str) -> ChannelError:
    return ChannelError(PRECONDITION_FAILED, f"invalid expiration '{value}': {detail}")


def user_id_mismatch(user_id: str, username: str) -> ChannelError:
    return ChannelError(
        PRECONDITION_FAILED,
        f"user_id property set to '{user_id}' but authenticated user was '{username}'",
    )


def access_refused(resource: str, name: str, vhost: str, user: str) -> ChannelError:
    return ChannelError(
        ACCESS_REFUSED,
        f"access to {resource} '{name}' in vhost '{vhost}' refused for user '{user}'",
    )


def topic_access_refused(routing_key: str, exchange: str, vhost: str, user: str
                         ) -> ChannelError:
    return ChannelError(ACCESS_REFUSED, f"access to topic '{routing_key}' in exchange "
                                        f"'{exchange}' in vhost '{vhost}' refused for user "
                                        f"'{user}'")


def erlang_float(value: float) -> str:
    """Erlang's shortest float text: the shorter of fixed and scientific (1.0e3, 0.5)."""
    shortest = repr(value)
    if not math.isfinite(value) or "e" in shortest:
        return shortest
    sign, digits, exponent = Decimal(shortest).normalize().as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits))
    scientific = f"{'-' if sign else ''}{text[0]}.{text[1:] or '0'}e{exponent + len(digits) - 1}"
    return scientific if len(scientific) < len(shortest) else shortest
