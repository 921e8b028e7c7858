"""Topic exchange routing: RabbitMQ's `*` / `#` word matching over a trie of binding keys.

Keys are split on `.`; `""` is zero words, an empty word between dots is a word, and
matching is case-sensitive. `*` matches exactly one word, `#` zero or more; a binding key
may hold any number of `#`. Matching visits each (trie node, word position) pair at most
once, so several `#` cannot blow up exponentially. Results are kept in a small bounded
cache keyed by routing key, cleared whenever a binding is added or removed.
"""

from __future__ import annotations

from collections.abc import Hashable

CACHE_SIZE = 1024


def _words(key: str) -> list[str]:
    return key.split(".") if key else []


class _Node:
    """A trie node: the next word -> child, and destinations of keys ending here."""

    __slots__ = ("children", "dests", "is_hash")

    def __init__(self, is_hash: bool) -> None:
        self.children: dict[str, _Node] = {}
        self.dests: dict[Hashable, int] = {}  # destination -> number of bindings
        self.is_hash = is_hash  # reached by a `#` edge: may absorb further words


class TopicRouter:
    """Bindings in a trie of binding-key words, with a bounded routing-key cache."""

    __slots__ = ("_cache", "_root")

    def __init__(self) -> None:
        self._root = _Node(False)
        self._cache: dict[str, tuple[Hashable, ...]] = {}

    def add(self, destination: Hashable, routing_key: str, arguments: dict) -> None:
        node = self._root
        for word in _words(routing_key):
            child = node.children.get(word)
            if child is None:
                child = node.children[word] = _Node(word == "#")
            node = child
        node.dests[destination] = node.dests.get(destination, 0) + 1
        self._cache.clear()

    def remove(self, destination: Hashable, routing_key: str, arguments: dict) -> None:
        path: list[tuple[_Node, str]] = []
        node = self._root
        for word in _words(routing_key):
            child = node.children.get(word)
            if child is None:
                return
            path.append((node, word))
            node = child
        count = node.dests.get(destination)
        if count is None:
            return
        self._cache.clear()
        if count > 1:
            node.dests[destination] = count - 1
            return
        del node.dests[destination]
        # Prune nodes left with neither destinations nor children, leaf first.
        while path and not node.dests and not node.children:
            parent, word = path.pop()
            del parent.children[word]
            node = parent

    def route(self, routing_key: str, headers: dict | None, out: set) -> None:
        cache = self._cache
        hit = cache.get(routing_key)
        if hit is None:
            found: set = set()
            self._match(_words(routing_key), found)
            hit = tuple(found)
            if len(cache) >= CACHE_SIZE:
                del cache[next(iter(cache))]  # evict the oldest entry
            cache[routing_key] = hit
        if hit:
            out.update(hit)

    def _match(self, words: list[str], out: set) -> None:
        n = len(words)
        stack: list[tuple[_Node, int]] = [(self._root, 0)]
        seen: set[tuple[_Node, int]] = set()
        while stack:
            state = stack.pop()
            if state in seen:
                continue
            seen.add(state)
            node, i = state
            children = node.children
            if i == n:
                if node.dests:
                    out.update(node.dests)
            else:
                child = children.get(words[i])
                if child is not None:
                    stack.append((child, i + 1))
                child = children.get("*")
                if child is not None:
                    stack.append((child, i + 1))
                if node.is_hash:  # this `#` absorbs one more word
                    stack.append((node, i + 1))
            child = children.get("#")
            if child is not None:  # a `#` matching zero words so far
                stack.append((child, i))

    @staticmethod
    def check_arguments(arguments: dict) -> None:
        return None
