"""The embedded durable store: SQLite (stdlib) in WAL mode with synchronous=FULL.

One commit per batch (group commit): every message and definition recorded during a
read pass, from every connection, costs one fsync. Batches are written one at a time,
by whichever worker thread the transport hands them to; the connection object is used
by one thread at a time only.
"""

from __future__ import annotations

import json
import os
import sqlite3
from typing import Any

from pamqp import decode, encode

from amqpbroker.store.base import (
    Batch,
    BatchingStore,
    Snapshot,
    StoredDelayed,
    StoredMessage,
)

SCHEMA_VERSION = 1
FILE_NAME = "amqpbroker.sqlite3"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS exchanges (
    vhost TEXT, name TEXT, type TEXT NOT NULL, auto_delete INTEGER NOT NULL,
    internal INTEGER NOT NULL, arguments BLOB NOT NULL, PRIMARY KEY (vhost, name));
CREATE TABLE IF NOT EXISTS queues (
    vhost TEXT, name TEXT, auto_delete INTEGER NOT NULL, arguments BLOB NOT NULL,
    PRIMARY KEY (vhost, name));
CREATE TABLE IF NOT EXISTS bindings (
    vhost TEXT, source TEXT, destination TEXT, kind TEXT, routing_key TEXT,
    arguments BLOB, PRIMARY KEY (vhost, source, destination, kind, routing_key, arguments));
CREATE TABLE IF NOT EXISTS messages (
    vhost TEXT, queue TEXT, seq INTEGER, exchange TEXT NOT NULL, routing_key TEXT NOT NULL,
    header BLOB NOT NULL, body BLOB NOT NULL, PRIMARY KEY (vhost, queue, seq))
    WITHOUT ROWID;
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
    "put_queue": ("INSERT OR REPLACE INTO queues VALUES (?, ?, ?, ?)",),
    "delete_queue": (
        "DELETE FROM queues WHERE vhost = ?1 AND name = ?2",
        "DELETE FROM messages WHERE vhost = ?1 AND queue = ?2",
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
    """Durable definitions and persistent messages in one SQLite file."""

    def __init__(self, data_dir: str) -> None:
        super().__init__()
        self.path = os.path.join(data_dir, FILE_NAME)
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
            self._check_version()
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
        self.db.close()

    def load(self) -> Snapshot:
        db = self.db
        try:
            snapshot = Snapshot(
                exchanges=[{"vhost": v, "name": n, "type": t, "auto_delete": bool(a),
                            "internal": bool(i), "arguments": _untable(args)}
                           for v, n, t, a, i, args in db.execute("SELECT * FROM exchanges")],
                queues=[{"vhost": v, "name": n, "auto_delete": bool(a),
                         "arguments": _untable(args)}
                        for v, n, a, args in db.execute("SELECT * FROM queues")],
                bindings=[{"vhost": v, "source": s, "destination": d, "kind": k,
                           "routing_key": r, "arguments": _untable(args)}
                          for v, s, d, k, r, args in db.execute("SELECT * FROM bindings")],
                messages=[StoredMessage(*row) for row in db.execute(
                    "SELECT vhost, queue, seq, exchange, routing_key, header, body "
                    "FROM messages ORDER BY vhost, queue, seq")],
                delayed=[StoredDelayed(*row) for row in db.execute(
                    "SELECT id, vhost, exchange, due, routing_key, header, body FROM delayed")],
                runtime=[(kind, key, json.loads(value)) for kind, key, value in db.execute(
                    "SELECT kind, key, value FROM runtime ORDER BY kind, key")],
            )
        except (sqlite3.DatabaseError, ValueError) as exc:
            raise StoreError(f"{self.path}: cannot read the store ({exc})") from exc
        self.next_delayed_id = max((d.id for d in snapshot.delayed), default=0)
        return snapshot

    def write_batch(self, batch: Batch) -> None:
        """Write one batch in one transaction; returns after the fsync."""
        db = self.db
        db.execute("BEGIN")
        try:
            for kind, params in batch.definitions:
                encoded = _encode_params(kind, params)
                for statement in _DEFINITIONS[kind]:
                    db.execute(statement, encoded)
            if batch.puts:
                db.executemany("INSERT OR REPLACE INTO messages VALUES (?, ?, ?, ?, ?, ?, ?)",
                               [(*key, *row) for key, row in batch.puts.items()])
            if batch.deletes:
                db.executemany("DELETE FROM messages WHERE vhost = ? AND queue = ? AND seq = ?",
                               batch.deletes)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise


def _encode_params(kind: str, params: tuple[Any, ...]) -> tuple[Any, ...]:
    if kind in ("put_exchange", "put_queue", "put_binding", "delete_binding"):
        return (*params[:-1], _table(params[-1]))
    if kind == "put_runtime":
        return (*params[:-1], json.dumps(params[-1], sort_keys=True))
    return params
