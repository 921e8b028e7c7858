"""Direct exchange routing: the routing key must equal the binding key exactly."""

from __future__ import annotations

from collections.abc import Hashable


class DirectRouter:
    """Binding key -> {destination: number of bindings}; routing is one dict lookup."""

    __slots__ = ("_keys",)

    def __init__(self) -> None:
        self._keys: dict[str, dict[Hashable, int]] = {}

    def add(self, destination: Hashable, routing_key: str, arguments: dict) -> None:
        dests = self._keys.get(routing_key)
        if dests is None:
            dests = self._keys[routing_key] = {}
        dests[destination] = dests.get(destination, 0) + 1

    def remove(self, destination: Hashable, routing_key: str, arguments: dict) -> None:
        dests = self._keys.get(routing_key)
        if dests is None or destination not in dests:
            return
        count = dests[destination] - 1
        if count:
            dests[destination] = count
            return
        del dests[destination]
        if not dests:
            del self._keys[routing_key]

    def route(self, routing_key: str, headers: dict | None, out: set) -> None:
        dests = self._keys.get(routing_key)
        if dests:
            out.update(dests)

    @staticmethod
    def check_arguments(arguments: dict) -> None:
        return None
