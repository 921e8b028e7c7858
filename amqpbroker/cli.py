"""The `amqpbroker` command line. Every `serve` option is a `Settings` field and can also
come from `AMQPBROKER_<OPTION>` or a TOML config file; RabbitMQ's
RABBITMQ_DEFAULT_USER/PASS/VHOST are honoured too."""

from __future__ import annotations

import errno
import json
import logging
import os
import sys
import typing
from dataclasses import fields
from typing import Any

import click
from click.core import ParameterSource

from amqpbroker import __version__, definitions
from amqpbroker.app import build_broker, run
from amqpbroker.config import ConfigError, Settings, load_file, memory_watermark
from amqpbroker.control.http import serve_controlled
from amqpbroker.ctl import ctl
from amqpbroker.definitions import DefinitionsError
from amqpbroker.store.sqlite import FILE_NAME as STORE_FILE
from amqpbroker.store.sqlite import StoreError
from amqpbroker.transport.tls import TLSFilesError

LOG_LEVELS = ["debug", "info", "warning", "error", "critical"]
RABBITMQ_ENV = {"default_user": "RABBITMQ_DEFAULT_USER", "default_pass": "RABBITMQ_DEFAULT_PASS",
                "default_vhost": "RABBITMQ_DEFAULT_VHOST"}
PARAM_TYPES: dict[str, click.ParamType] = {
    "port": click.IntRange(0, 65535),
    "tls_port": click.IntRange(0, 65535),
    "management_port": click.IntRange(0, 65535),
    "prometheus_port": click.IntRange(0, 65535),
    "stomp_port": click.IntRange(0, 65535),
    "mqtt_port": click.IntRange(0, 65535),
    "mqtt_tls_port": click.IntRange(0, 65535),
    "stomp_tls_port": click.IntRange(0, 65535),
    "web_stomp_port": click.IntRange(0, 65535),
    "web_mqtt_port": click.IntRange(0, 65535),
    "collect_statistics_interval": click.IntRange(1),
    "control_port": click.IntRange(0, 65535),
    "log_level": click.Choice(LOG_LEVELS, case_sensitive=False),
    "channel_max": click.IntRange(1, 65535),
    "frame_max": click.IntRange(4096, 2**31 - 1),
    "heartbeat": click.IntRange(0, 65535),
    "max_connections": click.IntRange(1),
    "consumer_timeout": click.IntRange(1),
    "disk_free_limit": click.IntRange(0),
    "queue_memory_limit": click.IntRange(0),
    "pre_auth_frame_max": click.IntRange(512, 131072),
    "max_table_depth": click.IntRange(1, 10000),
    "max_message_size": click.IntRange(1),
    "handshake_timeout": click.FloatRange(0.1),
}


# The listeners besides AMQP's, as a port-in-use error names them: (setting, name, whether
# it listens only with a TLS certificate).
OTHER_PORTS = (("tls_port", "AMQPS", True), ("management_port", "management", False),
               ("prometheus_port", "Prometheus", False), ("stomp_port", "STOMP", False),
               ("stomp_tls_port", "STOMP over TLS", True),
               ("web_stomp_port", "Web STOMP", False), ("web_mqtt_port", "Web MQTT", False),
               ("control_port", "control", False), ("mqtt_port", "MQTT", False),
               ("mqtt_tls_port", "MQTT over TLS", True))


def _options(command: Any) -> Any:
    """One option per Settings field."""
    hints = typing.get_type_hints(Settings)
    for setting in reversed(fields(Settings)):
        name = setting.name
        option = "--" + name.replace("_", "-")
        envvars = [f"AMQPBROKER_{name.upper()}"] + ([RABBITMQ_ENV[name]]
                                                   if name in RABBITMQ_ENV else [])
        hint = hints[name]
        if hint is bool:
            decl = f"{option}/--no-{option[2:]}"
            command = click.option(decl, name, default=setting.default, envvar=envvars,
                                   show_default=True, help=setting.metadata["help"])(command)
            continue
        base = typing.get_args(hint)[0] if typing.get_args(hint) else hint
        command = click.option(option, name, default=setting.default, envvar=envvars,
                               type=PARAM_TYPES.get(name, base), show_default=True,
                               help=setting.metadata["help"])(command)
    return command


@click.group()
@click.version_option(__version__, prog_name="amqpbroker")
def main() -> None:
    """amqpbroker: an AMQP 0-9-1 message broker that RabbitMQ clients use unchanged."""


def _fail(message: str) -> None:
    click.echo(f"amqpbroker: {message}", err=True)
    sys.exit(1)


@main.command()
@click.option("--config", "config_file", default=None, envvar="AMQPBROKER_CONFIG",
              type=click.Path(dir_okay=False), help="TOML file of settings (see config/).")
@_options
@click.pass_context
def serve(ctx: click.Context, config_file: str | None, **options: Any) -> None:
    """Start the broker and serve until SIGINT or SIGTERM."""
    values: dict[str, Any] = {}
    if config_file:
        try:
            values = load_file(config_file)
        except ConfigError as exc:
            _fail(str(exc))
    for name, value in options.items():
        if name not in values or ctx.get_parameter_source(name) != ParameterSource.DEFAULT:
            values[name] = value
    settings = Settings(**values)
    try:
        memory_watermark(settings.memory_high_watermark, 1)
    except ValueError as exc:
        _fail(f"--memory-high-watermark: {exc}")
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        controlled = settings.control_port or settings.test_control
        run(settings, serve_controlled) if controlled else run(settings)
    except (StoreError, ConfigError, DefinitionsError, TLSFilesError) as exc:
        _fail(str(exc))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            asked = [f"port {settings.port}"] + [
                f"the {name} port {getattr(settings, field)}"
                for field, name, with_tls in OTHER_PORTS
                if getattr(settings, field) and (settings.tls_cert or not with_tls)]
            ports = ", ".join(asked[:-1]) + (" or " if len(asked) > 1 else "") + asked[-1]
            _fail(f"cannot listen on {settings.host} ({ports}): address already in use")
        _fail(f"cannot start: {exc.strerror or exc}"
              + (f": {exc.filename}" if getattr(exc, "filename", None) else ""))
    except KeyboardInterrupt:
        pass


main.add_command(ctl)


@main.group(name="definitions")
def definitions_group() -> None:
    """RabbitMQ definitions (users, vhosts, permissions, exchanges, queues, bindings)."""


@definitions_group.command(name="export")
@click.option("--data-dir", default=None, envvar="AMQPBROKER_DATA_DIR",
              help="The data directory whose durable definitions to export.")
@click.option("--definitions", "definitions_file", default=None,
              envvar="AMQPBROKER_DEFINITIONS", help="A definitions file applied on top.")
@click.option("--default-user", default="guest", envvar=["AMQPBROKER_DEFAULT_USER",
                                                          "RABBITMQ_DEFAULT_USER"])
@click.option("--default-pass", default="guest", envvar=["AMQPBROKER_DEFAULT_PASS",
                                                          "RABBITMQ_DEFAULT_PASS"])
@click.option("--default-vhost", default="/", envvar=["AMQPBROKER_DEFAULT_VHOST",
                                                       "RABBITMQ_DEFAULT_VHOST"])
@click.option("-o", "--output", type=click.File("w"), default="-",
              help="Where to write the JSON (default: standard output).")
def export_command(data_dir: str | None, definitions_file: str | None, default_user: str,
                   default_pass: str, default_vhost: str, output: Any) -> None:
    """Write the broker's definitions in RabbitMQ's definitions.json schema."""
    if data_dir is not None:
        if not os.path.isdir(data_dir):
            _fail(f"{data_dir}: no such data directory")
        if not os.path.isfile(os.path.join(data_dir, STORE_FILE)):
            _fail(f"{data_dir}: holds no amqpbroker store ({STORE_FILE})")
    settings = Settings(data_dir=data_dir, definitions=definitions_file,
                        default_user=default_user, default_pass=default_pass,
                        default_vhost=default_vhost, log_level="warning",
                        queue_memory_limit=0)
    try:
        broker = build_broker(settings)
    except (StoreError, DefinitionsError) as exc:
        _fail(str(exc))
    json.dump(definitions.export(broker), output, indent=2)
    output.write("\n")
    broker.store.close()
