"""Settings of one broker, with RabbitMQ's defaults, and the TOML config file.

Each setting is one field here; the command line offers it as `--field-name`, the
environment as `AMQPBROKER_FIELD_NAME`, and a config file (`--config FILE`, TOML) as
`field_name = value`. Precedence: command line, environment, config file, default.
Relative paths in a config file are relative to the file's folder.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from typing import Any


def _setting(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass
class Settings:
    host: str = _setting("127.0.0.1", "Address to listen on.")
    port: int = _setting(5672, "AMQP port (0 picks a free one).")
    log_level: str = _setting("info", "debug, info, warning, error or critical.")
    default_user: str = _setting("guest", "User created at start (administrator on the "
                                          "default vhost).")
    default_pass: str = _setting("guest", "Password of the default user.")
    default_vhost: str = _setting("/", "Virtual host created at start.")
    loopback_users: str = _setting("guest", "Comma-separated users who may connect only from "
                                            "loopback ('' for none).")
    definitions: str | None = _setting(None, "RabbitMQ definitions.json to import at start.")
    data_dir: str | None = _setting(None, "Directory for durable definitions and persistent "
                                          "messages (none: nothing survives a restart).")
    disk_free_limit: int = _setting(50_000_000, "Bytes that must stay free in the data "
                                                "directory (disk alarm).")
    memory_high_watermark: str = _setting("0.4", "Memory the broker may hold before "
                                                 "publishers are blocked: a fraction of RAM "
                                                 "(0.4) or a size (512MiB, 2GB; 0: off).")
    queue_memory_limit: int = _setting(100_000, "Ready messages a queue keeps in memory; "
                                                "the rest is paged to disk (0: never page).")
    channel_max: int = _setting(2047, "Most channels per connection (offered in Tune).")
    frame_max: int = _setting(131072, "Largest frame in bytes (offered in Tune).")
    heartbeat: int = _setting(60, "Heartbeat interval in seconds (offered in Tune).")
    handshake_timeout: float = _setting(10.0, "Seconds a client has to finish the handshake.")
    max_message_size: int = _setting(134217728, "Largest message body in bytes.")
    pre_auth_frame_max: int = _setting(4096, "Largest frame in bytes before the handshake "
                                             "completes.")
    max_table_depth: int = _setting(64, "Deepest nesting of field tables in arguments and "
                                        "message headers.")
    max_connections: int | None = _setting(None, "Most client connections (none: no limit).")
    consumer_timeout: int | None = _setting(None, "Milliseconds a delivery may stay unacked "
                                                  "(none: off).")
    tls_port: int = _setting(5671, "AMQPS port, used when --tls-cert is given.")
    tls_cert: str | None = _setting(None, "PEM certificate (chain) for the AMQPS listener.")
    tls_key: str | None = _setting(None, "PEM private key for the AMQPS listener.")
    tls_ca: str | None = _setting(None, "PEM CA bundle to verify client certificates.")
    tls_verify_peer: bool = _setting(False, "Ask AMQPS clients for a certificate and verify "
                                            "it (enables SASL EXTERNAL).")
    tls_fail_if_no_peer_cert: bool = _setting(False, "Refuse AMQPS clients without a "
                                                     "certificate.")
    management_port: int = _setting(15672, "Management HTTP API port (0: off).")
    prometheus_port: int = _setting(15692, "Prometheus metrics port (0: off).")
    stomp_port: int = _setting(61613, "STOMP port (0: off).")
    mqtt_port: int = _setting(1883, "MQTT 3.1, 3.1.1 and 5.0 port (0: off).")
    mqtt_tls_port: int = _setting(8883, "MQTT over TLS port, used when --tls-cert is given "
                                        "(0: off).")
    stomp_tls_port: int = _setting(61614, "STOMP over TLS port, used when --tls-cert is "
                                          "given (0: off).")
    web_stomp_port: int = _setting(15674, "STOMP over WebSocket port, at /ws (0: off).")
    web_mqtt_port: int = _setting(15675, "MQTT over WebSocket port, at /ws (0: off).")
    collect_statistics_interval: int = _setting(5000, "Milliseconds between the samples "
                                                      "that message rates come from.")
    control_port: int = _setting(0, "Test control HTTP port (0: off): inspection, clock and "
                                    "faults as JSON under /api/test/, with no login; for "
                                    "test brokers only.")
    test_control: bool = _setting(False, "Serve the test control under /api/test/ on the "
                                         "management port too (no login; tests only).")


PATHS = ("definitions", "data_dir", "tls_cert", "tls_key", "tls_ca")
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*$")
_UNITS = {"": 1, "b": 1, "k": 1024, "kib": 1024, "kb": 1000, "m": 1024**2, "mib": 1024**2,
          "mb": 1000**2, "g": 1024**3, "gib": 1024**3, "gb": 1000**3, "t": 1024**4,
          "tib": 1024**4, "tb": 1000**4}


def memory_watermark(value: str | float, total: int) -> int | None:
    """The memory limit in bytes (None: no memory alarm), as RabbitMQ reads its
    vm_memory_high_watermark: a number up to 1 is a fraction of `total`, anything else a
    size in bytes with an optional unit (KiB, MiB, GiB, TiB, kB, MB, GB, TB; k, M, G, T
    are binary). Raises ValueError naming the problem."""
    match = _SIZE.match(str(value))
    if match is None:
        raise ValueError(f"'{value}' is neither a fraction of RAM (0.4) nor a size (512MiB)")
    number, unit = float(match.group(1)), match.group(2).lower()
    if unit not in _UNITS:
        raise ValueError(f"unknown unit '{match.group(2)}' in '{value}' (use KiB, MiB, GiB, "
                         "TiB, kB, MB, GB or TB)")
    if not unit and number <= 1:
        return int(total * number) if number > 0 else None
    return int(number * _UNITS[unit]) or None


class ConfigError(Exception):
    """The config file cannot be used; the message names the file and the entry."""


def load_file(path: str) -> dict[str, Any]:
    """The settings in a TOML file, checked against the known names and types."""
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    known = {f.name: f for f in fields(Settings)}
    for key, value in data.items():
        if key not in known:
            raise ConfigError(f"{path}: unknown setting '{key}'")
        expected = type(known[key].default) if known[key].default is not None else None
        if expected is float and isinstance(value, int):
            continue
        if key == "memory_high_watermark" and isinstance(value, int | float):
            data[key] = str(value)
            continue
        if expected is not None and not isinstance(value, expected):
            raise ConfigError(f"{path}: '{key}' must be {expected.__name__}, "
                              f"not {type(value).__name__}")
    folder = os.path.dirname(os.path.abspath(path))
    for key in PATHS:
        value = data.get(key)
        if isinstance(value, str) and value:
            data[key] = os.path.join(folder, os.path.expanduser(value))
    return data
