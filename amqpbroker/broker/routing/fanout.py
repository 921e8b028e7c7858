"""Fanout exchange routing: every bound destination gets every message."""

from __future__ import annotations

from collections.abc import Hashable


class FanoutRouter:
    """{destination: number of bindings}; the routing key and headers are ignored."""

    __slots__ = ("_dests",)

    def __init__(self) -> None:
        self._dests: dict[Hashable, int] = {}

    def add(self, destination: Hashable, routing_key: str, arguments: dict) -> None:
        self._dests[destination] = self._dests.get(destination, 0) + 1

    def remove(self, destination: Hashable, routing_key: str, arguments: dict) -> None:
        count = self._dests.get(destination)
        if count is None:
            return
        if count > 1:
            self._dests[destination] = count - 1
        else:
            del self._dests[destination]

    def route(self, routing_key: str, headers: dict | None, out: set) -> None:
        if self._dests:
            out.update(self._dests)

    @staticmethod
    def check_arguments(arguments: dict) -> None:
        return None
