"""Fixtures for the durability tests: a broker subprocess on a per-test data directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from durability_support import BrokerProcess, assert_no_traceback


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    """A broker on `tmp_path/data`, not started yet; killed at the end if still running,
    and its stderr (every start) checked for tracebacks."""
    process = BrokerProcess(tmp_path / "data", tmp_path / "broker.log")
    try:
        yield process
    finally:
        process.cleanup()
    assert_no_traceback(process)
