"""Settings of one broker, with RabbitMQ's defaults, and the TOML config file.

Each setting is one field here; the command line offers it as `--field-name`, the
environment as `AMQPBROKER_FIELD_NAME`, and a config file (`--config FILE`, TOML) as
`field_name = value`. Precedence: command line, environment, config file, default.
Relative paths in a config file are relative to the file's folder.
"""

from __future__ import annotations

import os
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
    memory_high_watermark: float = _setting(0.4, "Fraction of RAM above which publishers are "
                                                 "blocked (0: off).")
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


PATHS = ("definitions", "data_dir", "tls_cert", "tls_key", "tls_ca")


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
        if expected is not None and not isinstance(value, expected):
            raise ConfigError(f"{path}: '{key}' must be {expected.__name__}, "
                              f"not {type(value).__name__}")
    folder = os.path.dirname(os.path.abspath(path))
    for key in PATHS:
        value = data.get(key)
        if isinstance(value, str) and value:
            data[key] = os.path.join(folder, os.path.expanduser(value))
    return data
