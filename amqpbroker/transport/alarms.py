"""The memory alarm: sample the broker's resident memory and raise or clear the broker's
`memory` alarm around the high watermark (RabbitMQ's vm_memory_high_watermark)."""

from __future__ import annotations

import logging
import os

import anyio

from amqpbroker.broker.broker import Broker

log = logging.getLogger("amqpbroker.alarms")

SAMPLE_INTERVAL = 1.0


def total_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def resident_memory() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def watch_memory(broker: Broker, limit: int) -> None:
    """Every second, compare resident memory with `limit` bytes."""
    while True:
        used = resident_memory()
        high = used > limit
        if high != ("memory" in broker.alarms):
            log.warning("memory alarm %s: %d bytes used, limit %d",
                        "raised" if high else "cleared", used, limit)
            broker.set_alarm("memory", high)
        await anyio.sleep(SAMPLE_INTERVAL)
