"""Settings of one broker, with RabbitMQ's defaults."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 5672
    log_level: str = "info"
    default_user: str = "guest"
    default_pass: str = "guest"
    default_vhost: str = "/"
    channel_max: int = 2047
    frame_max: int = 131072
    heartbeat: int = 60
    handshake_timeout: float = 10.0
    max_message_size: int = 134217728
    consumer_timeout: int | None = None  # milliseconds; None: off
    memory_high_watermark: float = 0.4  # fraction of RAM; 0: no memory alarm
    data_dir: str | None = None  # None: nothing is stored, nothing survives a restart
    disk_free_limit: int = 50_000_000  # bytes; below it, the disk alarm blocks publishers
