"""The embedded durable store: definitions in SQLite (stdlib, WAL, synchronous=FULL),
persistent messages in a segment log beside it (`store/messages.py`).

One commit per batch (group commit): every message and definition recorded during a
read pass, from every connection, costs one fdatasync of the newest segment plus one
SQLite transaction when definitions changed. Message records are appended and synced
first, then definitions are committed, then acks are appended and dead segments deleted.
Batches are written one at a time, by whichever worker thread the transport hands them
to; the SQLite connection is used by one thread at a time only.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from typing import Any

from pamqp import decode, encode

from amqpbroker.store.base import (
    Batch,
    BatchingStore,
    MessageKey,
    Snapshot,
    StoredDelayed,
    StoredMessage,
)
from amqpbroker.store.messages import MessageStore

SCHEMA_VERSION = 2
FILE_NAME = "amqpbroker.sqlite3"
MESSAGES_DIR = "messages"
# A batch with up to this many bytes of message records is appended by the event loop
# itself (`append_batch`); a larger one is copied out by the writer thread.
APPEND_LIMIT = 1024 * 1024

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS exchanges (
    vhost TEXT, name TEXT, type TEXT NOT NULL, auto_delete INTEGER NOT NULL,
    internal INTEGER NOT NULL, arguments BLOB NOT NULL, PRIMARY KEY (vhost, name));
CREATE TABLE IF NOT EXISTS queues (
    vhost TEXT, name TEXT, auto_delete INTEGER NOT NULL, arguments BLOB NOT NULL,
    store_id INTEGER, PRIMARY KEY (vhost, name));
CREATE TABLE IF NOT EXISTS bindings (
    vhost TEXT, source TEXT, destination TEXT, kind TEXT, routing_key TEXT,
    arguments BLOB, PRIMARY KEY (vhost, source, destination, kind, routing_key, arguments));
CREATE TABLE IF NOT EXISTS delayed (
    id INTEGER PRIMARY KEY, vhost TEXT NOT NULL, exchange TEXT NOT NULL, due REAL NOT NULL,
    routing_key TEXT NOT NULL, header BLOB NOT NULL, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS runtime (
    kind TEXT, key TEXT, value TEXT NOT NULL, PRIMARY KEY (kind, key));
"""

# Each recorded definition change: the statements it runs, in order, on the same params.
_DEFINITIONS: dict[str, tuple[str, ...]] = {
    "put_exchange": ("INSERT OR REPLACE INTO exchanges VALUES (?, ?, ?, ?, ?, ?)",),
    "delete_exchange": (
        "DELETE FROM exchanges WHERE vhost = ?1 AND name = ?2",
        "DELETE FROM bindings WHERE vhost = ?1 AND (source = ?2 OR "
        "(destination = ?2 AND kind = 'exchange'))",
    ),
    "put_queue": (
        "INSERT OR REPLACE INTO queues (vhost, name, auto_delete, arguments, store_id) "
        "VALUES (?, ?, ?, ?, ?)",
        "INSERT OR REPLACE INTO meta VALUES ('next_queue_id', ?5 + 1)",
    ),
    "delete_queue": (
        "DELETE FROM queues WHERE vhost = ?1 AND name = ?2",
        "DELETE FROM bindings WHERE vhost = ?1 AND destination = ?2 AND kind = 'queue'",
    ),
    "put_binding": ("INSERT OR REPLACE INTO bindings VALUES (?, ?, ?, ?, ?, ?)",),
    "delete_binding": (
        "DELETE FROM bindings WHERE vhost = ? AND source = ? AND destination = ? AND kind = ?"
        " AND routing_key = ? AND arguments = ?",),
    "put_delayed": ("INSERT INTO delayed VALUES (?, ?, ?, ?, ?, ?, ?)",),
    "delete_delayed": ("DELETE FROM delayed WHERE id = ?",),
    "put_runtime": ("INSERT OR REPLACE INTO runtime VALUES (?, ?, ?)",),
    "delete_runtime": ("DELETE FROM runtime WHERE kind = ? AND key = ?",),
}


class StoreError(Exception):
    """The store cannot be used; the message names the file and the reason."""


def _table(arguments: dict[str, Any]) -> bytes:
    return encode.field_table(arguments)


def _untable(data: bytes) -> dict[str, Any]:
    return decode.field_table(data)[1]


class SqliteStore(BatchingStore):
    """Durable definitions in one SQLite file, persistent messages in segment files."""

    def __init__(self, data_dir: str) -> None:
        super().__init__()
        self.path = os.path.join(data_dir, FILE_NAME)
        self.queue_ids: dict[tuple[str, str], int] = {}
        self.next_queue_id = 1
        try:
            os.makedirs(data_dir, exist_ok=True)
            self.db = sqlite3.connect(self.path, isolation_level=None,
                                      check_same_thread=False)
            tables = {name for (name,) in self.db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            if tables and "meta" not in tables:
                raise StoreError(f"{self.path}: an SQLite file, but not an amqpbroker store")
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(SCHEMA)
            columns = {row[1] for row in self.db.execute("PRAGMA table_info(queues)")}
            if "store_id" not in columns:  # schema version 1
                self.db.execute("ALTER TABLE queues ADD COLUMN store_id INTEGER")
            self._check_version()
            self.messages = MessageStore(os.path.join(data_dir, MESSAGES_DIR))
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: not a usable amqpbroker store ({exc})") from exc
        except OSError as exc:
            raise StoreError(f"{data_dir}: cannot use the data directory "
                             f"({exc.strerror or exc})") from exc

    def _check_version(self) -> None:
        row = self.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            self.db.execute("INSERT INTO meta VALUES ('schema_version', ?)",
                            (str(SCHEMA_VERSION),))
            return
        try:
            version = int(row[0])
        except ValueError:
            raise StoreError(f"{self.path}: unreadable schema version {row[0]!r}") from None
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path}: written by a newer amqpbroker (schema version "
                             f"{version}, this one reads up to {SCHEMA_VERSION})")

    def close(self) -> None:
        self.messages.close()
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.db.close()

    # --- messages ------------------------------------------------------------------------

    @property
    def pending(self) -> bool:
        return bool(self.batch.definitions) or self.messages.pending

    def put_queue(self, vhost: str, name: str, auto_delete: bool,
                  arguments: dict[str, Any]) -> None:
        queue_id = self.queue_ids.get((vhost, name))
        if queue_id is None:
            queue_id = self.queue_ids[(vhost, name)] = self.next_queue_id
            self.next_queue_id += 1
        self._definition("put_queue", vhost, name, auto_delete, arguments, queue_id)

    def delete_queue(self, vhost: str, name: str) -> None:
        queue_id = self.queue_ids.pop((vhost, name), None)
        if queue_id is not None:
            self.messages.drop_queue(queue_id)
        super().delete_queue(vhost, name)

    def put_message(self, key: MessageKey, exchange: str, routing_key: str, header: bytes,
                    body: bytes) -> int:
        self.recorded += 1
        return self.messages.put(self.queue_ids[(key[0], key[1])], key[2], exchange,
                                 routing_key, header, body)

    def delete_message(self, key: MessageKey) -> None:
        queue_id = self.queue_ids.get((key[0], key[1]))
        if queue_id is not None:
            self.messages.delete(queue_id, key[2])

    def read_message(self, location: int) -> tuple[int, str, str, bytes, bytes]:
        return self.messages.read(location)

    def take_batch(self) -> Batch:
        batch = super().take_batch()
        if self.messages.pending:
            batch.messages = self.messages.take()
        return batch

    # --- loading ---------------------------------------------------------------------------

    def load(self) -> Snapshot:
        db = self.db
        try:
            queues = []
            for vhost, name, auto_delete, args, queue_id in db.execute(
                    "SELECT vhost, name, auto_delete, arguments, store_id FROM queues"):
                queues.append({"vhost": vhost, "name": name, "auto_delete": bool(auto_delete),
                               "arguments": _untable(args)})
                if queue_id is not None:
                    self.queue_ids[(vhost, name)] = queue_id
            row = db.execute("SELECT value FROM meta WHERE key = 'next_queue_id'").fetchone()
            self.next_queue_id = max([int(row[0]) if row else 1,
                                      *(i + 1 for i in self.queue_ids.values())])
            for queue in queues:
                if (queue["vhost"], queue["name"]) not in self.queue_ids:
                    self.put_queue(queue["vhost"], queue["name"], queue["auto_delete"],
                                   queue["arguments"])
            self._migrate_message_rows()
            snapshot = Snapshot(
                exchanges=[{"vhost": v, "name": n, "type": t, "auto_delete": bool(a),
                            "internal": bool(i), "arguments": _untable(args)}
                           for v, n, t, a, i, args in db.execute("SELECT * FROM exchanges")],
                queues=queues,
                bindings=[{"vhost": v, "source": s, "destination": d, "kind": k,
                           "routing_key": r, "arguments": _untable(args)}
                          for v, s, d, k, r, args in db.execute("SELECT * FROM bindings")],
                messages=self._live_messages(),
                delayed=[StoredDelayed(*row) for row in db.execute(
                    "SELECT id, vhost, exchange, due, routing_key, header, body FROM delayed")],
                runtime=[(kind, key, json.loads(value)) for kind, key, value in db.execute(
                    "SELECT kind, key, value FROM runtime ORDER BY kind, key")],
            )
            if self.batch.definitions:
                self.write_batch(self.take_batch())
        except (sqlite3.DatabaseError, ValueError) as exc:
            raise StoreError(f"{self.path}: cannot read the store ({exc})") from exc
        self.next_delayed_id = max((d.id for d in snapshot.delayed), default=0)
        return snapshot

    def _live_messages(self) -> Iterator[StoredMessage]:
        names = {queue_id: key for key, queue_id in self.queue_ids.items()}
        for message in self.messages.load(set(names)):
            vhost, queue = names[message.queue_id]
            yield StoredMessage(vhost, queue, message.seq, message.location, message.message)

    def _migrate_message_rows(self) -> None:
        """Schema version 1 kept messages in an SQLite table: move them to segments."""
        db = self.db
        if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'messages'").fetchone():
            return
        for row in db.execute("SELECT vhost, queue, seq, exchange, routing_key, header, body "
                              "FROM messages ORDER BY vhost, queue, seq"):
            if (row[0], row[1]) in self.queue_ids:
                self.put_message((row[0], row[1], row[2]), *row[3:])
        self.messages.write(*self.messages.take())
        db.execute("DROP TABLE messages")
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'",
                   (str(SCHEMA_VERSION),))
        db.execute("VACUUM")

    # --- writing ----------------------------------------------------------------------------

    def append_batch(self, batch: Batch) -> list[str] | None:
        if batch.definitions:
            return None
        if batch.messages is None:
            return []
        records, acks, dead = batch.messages
        if sum(map(len, records.values())) > APPEND_LIMIT:
            return None
        return self.messages.append(records, acks, dead)

    def write_batch(self, batch: Batch) -> None:
        """Write one batch; returns after the fsyncs."""
        records, acks, dead = batch.messages or ({}, {}, [])
        if records:
            self.messages.write(records, {}, [])
        if batch.definitions:
            db = self.db
            db.execute("BEGIN")
            try:
                for kind, params in batch.definitions:
                    encoded = _encode_params(kind, params)
                    for statement in _DEFINITIONS[kind]:
                        db.execute(statement, encoded)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        if acks or dead:
            self.messages.write({}, acks, dead)


def _encode_params(kind: str, params: tuple[Any, ...]) -> tuple[Any, ...]:
    if kind == "put_queue":
        return (*params[:3], _table(params[3]), params[4])
    if kind in ("put_exchange", "put_binding", "delete_binding"):
        return (*params[:-1], _table(params[-1]))
    if kind == "put_runtime":
        return (*params[:-1], json.dumps(params[-1], sort_keys=True))
    return params
