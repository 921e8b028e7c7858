"""A data directory or store the broker cannot use stops the start: a non-zero exit, one
line on stderr naming the path, no traceback, and the store file left exactly as it was."""

from __future__ import annotations

import random
import socket
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from durability_support import (
    STARTUP_DEADLINE,
    STORE_FILE,
    BrokerProcess,
    drain,
    free_port,
    publish_persistent,
    serve_command,
)

GARBAGE = random.Random(20240917).randbytes(8192)


def start_expecting_refusal(data_dir: Path) -> tuple[int, str]:
    """Run `serve` on `data_dir`; it must exit on its own. Returns (exit code, stderr).
    Fails at once if the broker starts listening instead."""
    port = free_port()
    proc = subprocess.Popen(serve_command(port, data_dir), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + STARTUP_DEADLINE
        while proc.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    pass
            except OSError:
                pass
            else:
                pytest.fail(f"the broker started on {data_dir} instead of refusing it")
            if time.monotonic() >= deadline:
                pytest.fail(f"the broker neither started nor exited within {STARTUP_DEADLINE}s")
            time.sleep(0.01)
        assert proc.stderr is not None
        return proc.returncode, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()


def assert_one_line_naming(stderr: str, path: Path) -> str:
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{stderr}"
    assert str(path) in lines[0], f"{path} not named in: {lines[0]}"
    return lines[0]


@pytest.mark.parametrize("where", ["under-a-regular-file", "is-a-regular-file"])
def test_data_dir_that_cannot_be_created(tmp_path: Path, where: str) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_bytes(b"not a directory\n")
    data_dir = blocker / "data" if where == "under-a-regular-file" else blocker

    code, stderr = start_expecting_refusal(data_dir)

    assert code != 0
    assert_one_line_naming(stderr, data_dir)
    assert blocker.read_bytes() == b"not a directory\n"


def made_by_broker(tmp_path: Path) -> Path:
    """A real store: a durable queue with persistent messages, stopped gracefully."""
    broker = BrokerProcess(tmp_path / "data", tmp_path / "broker.log").start()
    try:
        assert len(publish_persistent(broker, "faults.q", 2000).confirmed) == 2000
        assert broker.stop() == 0
    finally:
        broker.cleanup()
    return broker.store_path


def garbage(tmp_path: Path) -> Path:
    store = tmp_path / "data" / STORE_FILE
    store.parent.mkdir()
    store.write_bytes(GARBAGE)
    return store


def garbage_after_sqlite_header(tmp_path: Path) -> Path:
    store = garbage(tmp_path)
    store.write_bytes(b"SQLite format 3\x00" + GARBAGE[16:])
    return store


def torn_page(tmp_path: Path) -> Path:
    store = made_by_broker(tmp_path)
    size = store.stat().st_size
    with open(store, "r+b") as file:
        file.seek(size // 2)
        file.write(GARBAGE)
    return store


def truncated(tmp_path: Path) -> Path:
    store = made_by_broker(tmp_path)
    with open(store, "r+b") as file:
        file.truncate(store.stat().st_size // 3)
    return store


def unreadable_schema_version(tmp_path: Path) -> Path:
    store = made_by_broker(tmp_path)
    set_schema_version(store, "not-a-number")
    return store


def set_schema_version(store: Path, value: str) -> None:
    db = sqlite3.connect(store)
    try:
        with db:
            db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (value,))
    finally:
        db.close()


@pytest.mark.parametrize("corrupt", [garbage, garbage_after_sqlite_header, torn_page, truncated,
                                     unreadable_schema_version],
                         ids=lambda corrupt: corrupt.__name__)
def test_corrupt_store_is_refused_and_left_untouched(
        tmp_path: Path, corrupt: Callable[[Path], Path]) -> None:
    store = corrupt(tmp_path)
    before = store.read_bytes()

    code, stderr = start_expecting_refusal(store.parent)

    assert code != 0
    assert_one_line_naming(stderr, store)
    assert store.read_bytes() == before, "the broker changed the corrupt store"


def test_store_from_newer_version_is_refused_and_kept(tmp_path: Path) -> None:
    store = made_by_broker(tmp_path)
    set_schema_version(store, "999")
    before = store.read_bytes()

    code, stderr = start_expecting_refusal(store.parent)

    assert code != 0
    assert_one_line_naming(stderr, store)
    assert store.read_bytes() == before, "the broker changed the newer store"

    # Nothing was dropped: back at this version's schema, everything is there.
    set_schema_version(store, "1")
    broker = BrokerProcess(store.parent, tmp_path / "after.log").start()
    try:
        drained = drain(broker, "faults.q")
        assert drained.seqs == list(range(2000))
        assert broker.stop() == 0
    finally:
        broker.cleanup()
