"""The fsync helper process: it ends with the broker, kill -9 included, and when it is
killed itself the writer thread takes over its syncs, so confirms go on and mean what
they did."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from durability_support import BrokerProcess, drain, publish_persistent
from support.processes import free_port, serve_command, wait_for_port

from amqpbroker.store import fsync_helper

pytestmark = pytest.mark.timeout(60)

QUEUE = "helper.durable"
DEADLINE = 10.0


def children(pid: int) -> list[int]:
    """The pids whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("PPid:"):
                if int(line.split()[1]) == pid:
                    found.append(int(entry.name))
                break
    return found


def helper_of(broker: BrokerProcess) -> int:
    assert broker.proc is not None
    deadline = time.monotonic() + DEADLINE
    while not (found := children(broker.proc.pid)):
        assert time.monotonic() < deadline, "the broker started no fsync helper"
        time.sleep(0.01)
    assert len(found) == 1, f"the broker has {len(found)} child processes"
    return found[0]


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as status:
            return "State:\tZ" in status.read()  # a zombie has exited
    except FileNotFoundError:
        return True


def test_the_helper_ends_with_a_killed_broker(broker: BrokerProcess) -> None:
    broker.start()
    helper = helper_of(broker)
    broker.kill()
    deadline = time.monotonic() + DEADLINE
    while not gone(helper):
        assert time.monotonic() < deadline, "the fsync helper outlived the broker"
        time.sleep(0.01)


def test_without_its_helper_the_broker_syncs_on_its_thread(broker: BrokerProcess) -> None:
    broker.start()
    first = publish_persistent(broker, QUEUE, 300)
    assert first.confirmed == set(range(300))
    os.kill(helper_of(broker), signal.SIGKILL)
    after = publish_persistent(broker, QUEUE, 300, first=300)
    assert not after.failed and not after.nacked
    assert after.confirmed == set(range(300, 600))
    assert "the fsync helper exited" in broker.log()
    broker.restart("kill")
    assert drain(broker, QUEUE).seqs == list(range(600))


def test_ctrl_c_to_the_process_group_stops_the_broker_cleanly(tmp_path: Path) -> None:
    """A terminal's Ctrl-C reaches the broker and its helper alike: the broker shuts down
    gracefully, the helper still syncing for it, and nobody prints a traceback."""
    port = free_port()
    with open(tmp_path / "broker.log", "wb") as log:
        process = subprocess.Popen(serve_command(port, tmp_path / "data"), stderr=log,
                                   start_new_session=True)
    try:
        wait_for_port(port, DEADLINE)
        publish = BrokerProcess(tmp_path / "data", tmp_path / "unused.log")
        publish.port = port
        assert publish_persistent(publish, QUEUE, 100).confirmed == set(range(100))
        os.killpg(process.pid, signal.SIGINT)
        assert process.wait(DEADLINE) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    logged = (tmp_path / "broker.log").read_text()
    assert "Traceback" not in logged and "fsync helper exited" not in logged, logged


def test_a_helper_whose_broker_died_mid_sync_exits_quietly(tmp_path: Path) -> None:
    """The broker killed while its helper syncs: the answer finds no reader, and the helper
    exits without a traceback (it writes to the broker's log)."""
    target = tmp_path / "segment"
    target.write_bytes(b"x")
    helper = subprocess.Popen([sys.executable, "-I", fsync_helper.__file__],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    assert helper.stdin and helper.stdout and helper.stderr
    helper.stdout.close()  # nobody will read the answer
    helper.stdin.write(str(target).encode() + b"\n")
    helper.stdin.close()
    assert (helper.wait(DEADLINE), helper.stderr.read()) == (0, b"")
