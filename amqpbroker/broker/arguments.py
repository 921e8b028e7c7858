"""Queue arguments and message properties checked as RabbitMQ checks them.

`check_queue` validates a queue declaration's `x-` arguments (406 with RabbitMQ's
detail terms); `field_type` names a value's AMQP field type as RabbitMQ's texts do;
`check_expiration` parses the per-message `expiration` property.
"""

from __future__ import annotations

import re
from typing import Any

from amqpbroker import errors

MAX_EXPIRY = 315_360_000_000  # ten years in milliseconds: RabbitMQ's limit for TTLs
OVERFLOW_MODES = ("drop-head", "reject-publish", "reject-publish-dlx")
QUEUE_TYPES = ("classic", "quorum", "stream")
QUEUE_MODES = ("default", "lazy")
_INTEGER_PREFIX = re.compile(r"[+-]?[0-9]+")


def field_type(value: Any) -> str:
    """The AMQP field type word RabbitMQ uses for a value, as our clients encode it."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        if -128 <= value <= 127:
            return "byte"
        if -32768 <= value <= 32767:
            return "short"
        if -(2**31) <= value < 2**31:
            return "signedint"
        return "long"
    if isinstance(value, float):
        return "double"
    if isinstance(value, dict):
        return "table"
    if isinstance(value, list):
        return "array"
    if value is None:
        return "void"
    return "longstr"


def _integer(value: Any, minimum: int, maximum: int | None = None) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return f'"expected integer, got {field_type(value)}"'
    if value < 0 and minimum >= 0:
        return f"{{value_negative,{value}}}"
    if value < minimum:
        return f"{{value_zero,{value}}}"
    if maximum is not None and value > maximum:
        return f"{{value_too_large,{value}}}"
    return None


def _choice(value: Any, choices: tuple[str, ...], bad: str) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return f"{{unacceptable_type,{field_type(value)}}}"
    return None if value in choices else bad.format(value)


def _priority(value: Any) -> str | None:
    problem = _integer(value, 0)
    if problem is None and value > 255:
        return f"{{max_value_exceeded,{value}}}"
    return problem


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"{{unacceptable_type,{field_type(value)}}}"


_VALUE_CHECKS = {
    "x-expires": lambda v: _integer(v, 1, MAX_EXPIRY),
    "x-message-ttl": lambda v: _integer(v, 0, MAX_EXPIRY),
    "x-max-length": lambda v: _integer(v, 0),
    "x-max-length-bytes": lambda v: _integer(v, 0),
    "x-delivery-limit": lambda v: _integer(v, 0),
    "x-max-priority": _priority,
    "x-overflow": lambda v: _choice(v, OVERFLOW_MODES, "invalid_overflow"),
    "x-queue-type": lambda v: _choice(v, QUEUE_TYPES, "\"unsupported queue type '{}'\""),
    "x-queue-mode": lambda v: _choice(v, QUEUE_MODES, "\"unsupported queue mode '{}'\""),
    "x-single-active-consumer": _boolean,
}


def check_queue(name: str, vhost: str, durable: bool, exclusive: bool, auto_delete: bool,
                arguments: dict[str, Any]) -> None:
    """Raise RabbitMQ's 406 for the first invalid argument of a queue declaration."""
    for arg, check in _VALUE_CHECKS.items():
        if arg in arguments:
            problem = check(arguments[arg])
            if problem is not None:
                raise errors.invalid_queue_arg(arg, name, vhost, problem)
    for arg in ("x-dead-letter-exchange", "x-dead-letter-routing-key"):
        value = arguments.get(arg)
        if value is not None and not isinstance(value, str | bytes):
            raise errors.invalid_arg_type(field_type(value), arg, name, vhost)
    if "x-delivery-limit" in arguments and arguments.get("x-queue-type") in (None, "classic"):
        raise errors.unsupported_queue_arg("x-delivery-limit", name, vhost,
                                           "rabbit_classic_queue")
    if "x-dead-letter-routing-key" in arguments and "x-dead-letter-exchange" not in arguments:
        raise errors.invalid_queue_arg("x-dead-letter-routing-key", name, vhost,
                                       "routing_key_but_no_dlx_defined")
    if arguments.get("x-queue-type") == "quorum":
        if not durable:
            raise errors.invalid_queue_property("non-durable", name, vhost)
        if exclusive:
            raise errors.invalid_queue_property("exclusive-owner", name, vhost)
        if auto_delete:
            raise errors.invalid_queue_property("auto-delete", name, vhost)


def check_expiration(value: str) -> int | None:
    """The `expiration` property in milliseconds (None for ''), or 406 as RabbitMQ."""
    if value == "":
        return None
    match = _INTEGER_PREFIX.match(value)
    if match is None:
        raise errors.invalid_expiration(value, "no_integer")
    if match.end() != len(value):
        raise errors.invalid_expiration(value, f'{{leftover_string,"{value[match.end():]}"}}')
    number = int(match.group())
    if number < 0:
        raise errors.invalid_expiration(value, f"{{value_negative,{number}}}")
    if number > MAX_EXPIRY:
        raise errors.invalid_expiration(value, f"{{value_too_large,{number}}}")
    return number
