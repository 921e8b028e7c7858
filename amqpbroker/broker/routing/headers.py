"""Headers exchange routing: match message headers against binding arguments (`x-match`).

`x-match` is `all` (default), `any`, `all-with-x` or `any-with-x`. Under all/any, binding
keys starting with `x-` are ignored; the -with-x variants count them (never `x-match`
itself). With nothing left to compare, `all` matches every message and `any` none.
A void (None) binding value matches any message having the key. Otherwise the header
must have the same kind of value: bool only matches bool, int only int (any width), and
a str equals its UTF-8 bytes.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from amqpbroker import errors

X_MATCH = "x-match"
_MODES = {"all": (False, False), "any": (True, False),
          "all-with-x": (False, True), "any-with-x": (True, True)}
_MISSING: Any = object()


def _text(value: object) -> object:
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode()
        except UnicodeDecodeError:
            return value
    return value


def _equal(a: object, b: object) -> bool:
    """AMQP value equality: same kind of value and equal, recursively."""
    ta = type(a)
    if ta is type(b) and ta is not dict and ta is not list and ta is not tuple:
        return a == b
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int):
        return isinstance(b, int) and a == b
    if isinstance(a, str | bytes | bytearray):
        if not isinstance(b, str | bytes | bytearray):
            return False
        if isinstance(a, str):
            a = a.encode()
        if isinstance(b, str):
            b = b.encode()
        return a == b
    if isinstance(a, dict):
        if not isinstance(b, dict) or len(a) != len(b):
            return False
        for key, value in a.items():
            other = b.get(key, _MISSING)
            if other is _MISSING or not _equal(value, other):
                return False
        return True
    if isinstance(a, list | tuple):
        return (isinstance(b, list | tuple) and len(a) == len(b)
                and all(_equal(x, y) for x, y in zip(a, b, strict=True)))
    return type(a) is type(b) and a == b


def _freeze(value: object) -> object:
    """A hashable form of an arguments value that keeps value kinds apart."""
    if isinstance(value, dict):
        return ("T", tuple(sorted((str(k), _freeze(v)) for k, v in value.items())))
    if isinstance(value, list | tuple):
        return ("A", tuple(_freeze(v) for v in value))
    if isinstance(value, bytearray):
        value = bytes(value)
    if isinstance(value, float):
        return ("float", repr(value))
    try:
        hash(value)
    except TypeError:
        return (type(value).__name__, repr(value))
    return (type(value).__name__, value)


def _mode(arguments: dict) -> tuple[bool, bool]:
    """(match any, count x- keys) for the binding; raises on a bad x-match."""
    raw = arguments.get(X_MATCH, _MISSING)
    if raw is _MISSING:
        return False, False
    value = _text(raw)
    mode = _MODES.get(value) if isinstance(value, str) else None
    if mode is None:
        raise errors.invalid_x_match(value if isinstance(value, str) else str(value))
    return mode


class _Binding:
    """One parsed binding: its destination, mode and the (key, value) pairs to compare."""

    __slots__ = ("any", "count", "destination", "pairs")

    def __init__(self, destination: Hashable, arguments: dict) -> None:
        match_any, with_x = _mode(arguments)
        self.destination = destination
        self.any = match_any
        self.pairs: tuple[tuple[str, object], ...] = tuple(
            (key, value) for key, value in arguments.items()
            if key != X_MATCH and (with_x or not key.startswith("x-"))
        )
        self.count = 1  # times this exact binding was added

    def matches(self, headers: dict | None) -> bool:
        pairs = self.pairs
        if not pairs:
            return not self.any
        if not headers:
            return False
        if self.any:
            for key, value in pairs:
                got = headers.get(key, _MISSING)
                if got is not _MISSING and (value is None or _equal(value, got)):
                    return True
            return False
        for key, value in pairs:
            got = headers.get(key, _MISSING)
            if got is _MISSING or (value is not None and not _equal(value, got)):
                return False
        return True


class HeadersRouter:
    """Parsed bindings keyed by (destination, routing key, frozen arguments)."""

    __slots__ = ("_bindings",)

    def __init__(self) -> None:
        self._bindings: dict[tuple[Hashable, str, object], _Binding] = {}

    def add(self, destination: Hashable, routing_key: str, arguments: dict) -> None:
        key = (destination, routing_key, _freeze(arguments))
        binding = self._bindings.get(key)
        if binding is None:
            self._bindings[key] = _Binding(destination, arguments)
        else:
            binding.count += 1

    def remove(self, destination: Hashable, routing_key: str, arguments: dict) -> None:
        key = (destination, routing_key, _freeze(arguments))
        binding = self._bindings.get(key)
        if binding is None:
            return
        binding.count -= 1
        if not binding.count:
            del self._bindings[key]

    def route(self, routing_key: str, headers: dict | None, out: set) -> None:
        for binding in self._bindings.values():
            destination = binding.destination
            if destination not in out and binding.matches(headers):
                out.add(destination)

    @staticmethod
    def check_arguments(arguments: dict) -> None:
        _mode(arguments)
