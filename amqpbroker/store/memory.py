"""The store for a broker without a data directory: nothing survives a restart."""

from __future__ import annotations

from typing import Any

from amqpbroker.store.base import Batch, MessageKey, Snapshot


class MemoryStore:
    """Records nothing; every call is a no-op and every batch is empty."""

    durable = False
    pending = False
    recorded = 0

    def load(self) -> Snapshot:
        return Snapshot()

    def close(self) -> None:
        return None

    def take_batch(self) -> Batch:
        return Batch()

    def append_batch(self, batch: Batch) -> list[str] | None:
        return []

    def write_batch(self, batch: Batch) -> None:
        return None

    def _ignore(self, *args: Any) -> None:
        return None

    put_exchange = delete_exchange = put_queue = delete_queue = _ignore
    put_binding = delete_binding = delete_delayed = put_runtime = delete_runtime = _ignore

    def put_message(self, key: MessageKey, exchange: str, routing_key: str, header: bytes,
                    body: bytes) -> int:
        return 0

    def delete_message(self, key: MessageKey) -> None:
        return None

    def read_message(self, location: int) -> tuple[int, str, str, bytes, bytes]:
        raise KeyError(location)

    def put_delayed(self, vhost: str, exchange: str, due: float, routing_key: str,
                    header: bytes, body: bytes) -> int:
        return 0
