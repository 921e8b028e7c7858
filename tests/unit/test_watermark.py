"""--memory-high-watermark: a fraction of RAM or a size, as RabbitMQ's
vm_memory_high_watermark (relative) and vm_memory_high_watermark.absolute."""

from __future__ import annotations

import pytest

from amqpbroker.config import memory_watermark

GIB = 1024**3


@pytest.mark.parametrize(("value", "expected"), [
    ("0.4", int(0.4 * 16 * GIB)), (0.5, 8 * GIB), ("1", 16 * GIB), ("0", None), (0, None),
    ("512MiB", 512 * 1024**2), ("512M", 512 * 1024**2), ("2GB", 2 * 1000**3),
    ("1.5GiB", int(1.5 * GIB)), ("1073741824", GIB), ("100kB", 100_000), (" 64 MiB ", 64 * 2**20),
])
def test_fractions_and_sizes(value: str | float, expected: int | None) -> None:
    assert memory_watermark(value, 16 * GIB) == expected


@pytest.mark.parametrize(("value", "problem"), [
    ("lots", "neither a fraction of RAM"), ("-1", "neither a fraction of RAM"),
    ("5 parsecs", "unknown unit 'parsecs'"),
])
def test_bad_values_name_the_problem(value: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        memory_watermark(value, GIB)
