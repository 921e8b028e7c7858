"""The segment log and the message store on real files: records come back after a
restart minus the acked ones, a message for several queues is written once, emptied
segments are deleted, a torn record at the end is ignored."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from amqpbroker.store.messages import MessageStore, decode_message
from amqpbroker.store.segments import SegmentLog, split

HEADER = b"\x00\x3c\x00\x00" + bytes(8) + b"\x10\x00\x02"


def write(store: MessageStore) -> None:
    store.write(*store.take())


def reopen(directory: Path, *queue_ids: int) -> tuple[MessageStore, list[tuple[int, int, bytes]]]:
    store = MessageStore(str(directory), segment_size=4096)
    live = [(m.queue_id, m.seq, decode_message(m.message)[3])
            for m in store.load(set(queue_ids))]
    return store, live


def test_messages_survive_minus_the_acked(tmp_path: Path) -> None:
    store = MessageStore(str(tmp_path), segment_size=4096)
    for seq in range(1, 101):
        store.put(1, seq, "", "q", HEADER, b"m%d" % seq)
    write(store)
    for seq in range(1, 51):
        store.delete(1, seq)
    write(store)
    store.close()
    store, live = reopen(tmp_path, 1)
    assert live == [(1, seq, b"m%d" % seq) for seq in range(51, 101)]
    store.close()


def test_a_message_for_several_queues_is_written_once(tmp_path: Path) -> None:
    store = MessageStore(str(tmp_path))
    body = b"b" * 10_000
    for queue_id in (1, 2, 3):
        store.put(queue_id, 1, "fan", "", HEADER, body)
    write(store)
    assert sum(os.path.getsize(tmp_path / name) for name in os.listdir(tmp_path)) < 10_200
    store.delete(2, 1)
    write(store)
    store.close()
    store, live = reopen(tmp_path, 1, 2, 3)
    assert live == [(1, 1, body), (3, 1, body)]
    store.close()


def test_reading_a_link_gives_the_message(tmp_path: Path) -> None:
    store = MessageStore(str(tmp_path))
    first = store.put(1, 7, "x", "rk", HEADER, b"body")
    second = store.put(2, 9, "x", "rk", HEADER, b"body")
    assert store.read(first) == (7, "x", "rk", HEADER, b"body")
    assert store.read(second) == (9, "x", "rk", HEADER, b"body")  # before it is written
    write(store)
    assert store.read(second) == (9, "x", "rk", HEADER, b"body")  # from the file
    store.close()


def test_emptied_segments_are_deleted(tmp_path: Path) -> None:
    store = MessageStore(str(tmp_path), segment_size=4096)
    for seq in range(1, 201):
        store.put(1, seq, "", "q", HEADER, b"%99d" % seq)
    write(store)
    assert len(store.log.segments) > 3
    for seq in range(1, 201):
        store.delete(1, seq)
    write(store)
    assert len(store.log.segments) <= 1
    store.close()
    store, live = reopen(tmp_path, 1)
    assert live == []
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".seg")]
    store.close()


def test_dropping_a_queue_frees_its_segments(tmp_path: Path) -> None:
    store = MessageStore(str(tmp_path), segment_size=4096)
    for seq in range(1, 201):
        store.put(1, seq, "", "q", HEADER, b"%99d" % seq)
    store.put(2, 1, "", "other", HEADER, b"kept")
    write(store)
    store.drop_queue(1)
    write(store)
    store.close()
    store, live = reopen(tmp_path, 2)  # the definitions store no longer lists queue 1
    assert live == [(2, 1, b"kept")]
    assert len(store.log.segments) == 1
    store.close()


def test_links_of_unknown_queues_are_dead_at_start(tmp_path: Path) -> None:
    store = MessageStore(str(tmp_path))
    store.put(5, 1, "", "gone", HEADER, b"x")
    write(store)
    store.close()
    store, live = reopen(tmp_path, 6)
    assert live == []
    assert store.log.segments == []
    store.close()


def test_a_torn_record_at_the_end_is_ignored(tmp_path: Path) -> None:
    store = MessageStore(str(tmp_path))
    store.put(1, 1, "", "q", HEADER, b"whole")
    store.put(1, 2, "", "q", HEADER, b"torn" * 100)
    write(store)
    store.close()
    (segment,) = SegmentLog(str(tmp_path), 4096).segments
    path = SegmentLog(str(tmp_path), 4096).path(segment)
    os.truncate(path, os.path.getsize(path) - 50)
    store, live = reopen(tmp_path, 1)
    assert live == [(1, 1, b"whole")]
    store.put(1, 3, "", "q", HEADER, b"after")  # goes into a new segment
    write(store)
    assert split(store.put(1, 4, "", "q", HEADER, b"x"))[0] != segment
    store.close()


def test_a_short_write_fails_the_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A disk that fills up mid-write takes part of a batch: the batch fails (so nothing
    in it is confirmed) instead of being synced torn."""
    store = MessageStore(str(tmp_path))
    store.put(1, 1, "", "q", HEADER, b"body")
    monkeypatch.setattr(os, "write", lambda fd, data: len(data) - 1)
    with pytest.raises(OSError) as failed:
        store.append(*store.take())
    assert failed.value.errno == errno.ENOSPC
