"""The store interface, and the in-memory batch every adapter commits.

The broker calls the `Store` methods synchronously; they only record what must be
written. The transport takes the batch (`take_batch`) after each read pass and has it
written and fsync'd without the event loop waiting: appended by the loop and fsync'd by
a helper process (`append_batch`), or all of it in a worker thread (`write_batch`);
replies that promise durability (declare-ok, confirms) go out only after that. Removing a message
(an ack) promises nothing, so it does not count as recorded: it is written with the next
batch.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

MessageKey = tuple[str, str, int]  # vhost, queue, sequence number


@dataclass
class StoredMessage:
    """A live message of a durable queue, read back at start: `fields` holds exchange,
    routing key, content header and body (`store.messages.decode_message` reads them;
    `body_size` measures the body without copying it)."""

    vhost: str
    queue: str
    seq: int
    location: int  # where the store keeps it: `read_message` fetches it again
    fields: bytes | memoryview


@dataclass
class StoredDelayed:
    id: int
    vhost: str
    exchange: str
    due: float  # wall-clock seconds
    routing_key: str
    header: bytes
    body: bytes


@dataclass
class Snapshot:
    """Everything a store holds, as read at start."""

    exchanges: list[dict[str, Any]] = field(default_factory=list)
    queues: list[dict[str, Any]] = field(default_factory=list)
    bindings: list[dict[str, Any]] = field(default_factory=list)
    # Read lazily, in publish order per queue, so a large backlog is never all in memory.
    messages: Iterable[StoredMessage] = ()
    delayed: list[StoredDelayed] = field(default_factory=list)
    # Users, vhosts, permissions, topic permissions and policies: (kind, key, value).
    runtime: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)


@dataclass
class Batch:
    """What one commit writes: message records first, then definition changes in order."""

    definitions: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    messages: Any = None  # the adapter's own record of message changes

    def __bool__(self) -> bool:
        return bool(self.definitions) or self.messages is not None


class Store(Protocol):
    """What the broker asks of storage."""

    durable: bool
    recorded: int

    def load(self) -> Snapshot: ...
    def close(self) -> None: ...

    def put_exchange(self, vhost: str, name: str, type_: str, auto_delete: bool,
                     internal: bool, arguments: dict[str, Any]) -> None: ...
    def delete_exchange(self, vhost: str, name: str) -> None: ...
    def put_queue(self, vhost: str, name: str, auto_delete: bool,
                  arguments: dict[str, Any]) -> None: ...
    def delete_queue(self, vhost: str, name: str) -> None: ...
    def put_binding(self, vhost: str, source: str, destination: str, kind: str,
                    routing_key: str, arguments: dict[str, Any]) -> None: ...
    def delete_binding(self, vhost: str, source: str, destination: str, kind: str,
                       routing_key: str, arguments: dict[str, Any]) -> None: ...
    def put_message(self, key: MessageKey, exchange: str, routing_key: str, header: bytes,
                    body: bytes) -> int:
        """Record a persistent message of a durable queue; returns its location."""
    def delete_message(self, key: MessageKey) -> None: ...
    def read_message(self, location: int) -> tuple[int, str, str, bytes, bytes]:
        """(sequence number, exchange, routing key, content header, body) of a stored
        message."""
    def put_delayed(self, vhost: str, exchange: str, due: float, routing_key: str,
                    header: bytes, body: bytes) -> int: ...
    def delete_delayed(self, delayed_id: int) -> None: ...
    def put_runtime(self, kind: str, key: str, value: dict[str, Any]) -> None: ...
    def delete_runtime(self, kind: str, key: str) -> None: ...

    @property
    def pending(self) -> bool: ...
    def take_batch(self) -> Batch: ...
    def append_batch(self, batch: Batch) -> list[str] | None:
        """On the event loop: append `batch` to files without waiting for the disk, and
        return the paths to fsync (a directory's with a trailing `/`) for it to be
        durable. None, with nothing done, when the batch must go to `write_batch`
        (definition changes, or records too large to copy on the event loop)."""
    def write_batch(self, batch: Batch) -> None:
        """Write all of `batch` and fsync it (in a worker thread)."""


class BatchingStore:
    """The recording half every adapter shares: turns calls into the next `Batch`."""

    durable = True

    def __init__(self) -> None:
        self.batch = Batch()
        self.next_delayed_id = 0
        self.recorded = 0  # changes recorded so far; the transport waits for them

    @property
    def pending(self) -> bool:
        return bool(self.batch)

    def take_batch(self) -> Batch:
        batch, self.batch = self.batch, Batch()
        return batch

    def _definition(self, kind: str, *params: Any) -> None:
        self.recorded += 1
        self.batch.definitions.append((kind, params))

    def put_exchange(self, vhost: str, name: str, type_: str, auto_delete: bool,
                     internal: bool, arguments: dict[str, Any]) -> None:
        self._definition("put_exchange", vhost, name, type_, auto_delete, internal, arguments)

    def delete_exchange(self, vhost: str, name: str) -> None:
        self._definition("delete_exchange", vhost, name)

    def put_queue(self, vhost: str, name: str, auto_delete: bool,
                  arguments: dict[str, Any]) -> None:
        self._definition("put_queue", vhost, name, auto_delete, arguments)

    def delete_queue(self, vhost: str, name: str) -> None:
        self._definition("delete_queue", vhost, name)

    def put_binding(self, vhost: str, source: str, destination: str, kind: str,
                    routing_key: str, arguments: dict[str, Any]) -> None:
        self._definition("put_binding", vhost, source, destination, kind, routing_key,
                         arguments)

    def delete_binding(self, vhost: str, source: str, destination: str, kind: str,
                       routing_key: str, arguments: dict[str, Any]) -> None:
        self._definition("delete_binding", vhost, source, destination, kind, routing_key,
                         arguments)

    def put_delayed(self, vhost: str, exchange: str, due: float, routing_key: str,
                    header: bytes, body: bytes) -> int:
        self.next_delayed_id += 1
        self._definition("put_delayed", self.next_delayed_id, vhost, exchange, due,
                         routing_key, header, body)
        return self.next_delayed_id

    def delete_delayed(self, delayed_id: int) -> None:
        self._definition("delete_delayed", delayed_id)

    def put_runtime(self, kind: str, key: str, value: dict[str, Any]) -> None:
        """A runtime definition (user, vhost, permission, topic permission, policy):
        `kind` and `key` name it, `value` is its JSON-serialisable body."""
        self._definition("put_runtime", kind, key, value)

    def delete_runtime(self, kind: str, key: str) -> None:
        self._definition("delete_runtime", kind, key)

