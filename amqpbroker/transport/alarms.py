"""Resource alarms: sample the memory the broker holds and the data directory's free disk
space, and raise or clear the broker's `memory` and `disk` alarms around their limits
(RabbitMQ's vm_memory_high_watermark and disk_free_limit).

The memory figure is what the broker holds, not the process RSS (which Python never
gives back after a spike): the queued messages in memory, the unacknowledged deliveries
and the connections' buffers, plus the resident size at start as the fixed overhead. So
the alarm clears once the messages are gone.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass

import anyio

from amqpbroker.broker.broker import Broker

log = logging.getLogger("amqpbroker.alarms")

SAMPLE_INTERVAL = 1.0


@dataclass
class ResourceLimits:
    memory: int | None = None  # bytes the broker may hold; None: no memory alarm
    data_dir: str | None = None
    disk_free: int = 50_000_000  # bytes that must stay free in data_dir


def total_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def resident_memory() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class HeldMemory:
    """The memory figure the alarm compares with its limit: the resident size when it was
    made (the fixed overhead), plus the queued messages in memory and what the
    connections hold (`connection_memory`: buffers, unacked deliveries)."""

    def __init__(self, broker: Broker, connection_memory: Callable[[], int]) -> None:
        self.broker = broker
        self.connection_memory = connection_memory
        try:
            self.fixed = resident_memory()
        except (OSError, ValueError):
            self.fixed = 0

    def parts(self) -> tuple[int, int, int]:
        """(fixed, queued messages, connections) in bytes."""
        return self.fixed, self.broker.queued_memory(), self.connection_memory()

    def used(self) -> int:
        return sum(self.parts())


def _update(broker: Broker, resource: str, high: bool, detail: str) -> None:
    if high != (resource in broker.alarms):
        log.warning("%s alarm %s: %s", resource, "raised" if high else "cleared", detail)
        broker.set_alarm(resource, high)


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


async def watch_resources(broker: Broker, limits: ResourceLimits, memory: HeldMemory) -> None:
    """Every second, compare memory use (`memory`) and free disk space with their
    limits."""
    if limits.memory is None and limits.data_dir is None:
        return
    while True:
        if limits.memory is not None:
            fixed, queued, connections = memory.parts()
            used = fixed + queued + connections
            _update(broker, "memory", used > limits.memory,
                    f"{_mib(used)} in use ({_mib(queued)} queued messages, "
                    f"{_mib(connections)} connections, {_mib(fixed)} fixed), "
                    f"limit {_mib(limits.memory)}")
        if limits.data_dir is not None:
            free = shutil.disk_usage(limits.data_dir).free
            _update(broker, "disk", free < limits.disk_free,
                    f"{free} bytes free in {limits.data_dir}, limit {limits.disk_free}")
        await anyio.sleep(SAMPLE_INTERVAL)
