"""The `amqpbroker` command line; every option can also come from an environment variable."""

from __future__ import annotations

import errno
import logging
import sys

import click

from amqpbroker import __version__
from amqpbroker.app import run
from amqpbroker.config import Settings
from amqpbroker.store.sqlite import StoreError

LOG_LEVELS = ["debug", "info", "warning", "error", "critical"]


@click.group(context_settings={"auto_envvar_prefix": "AMQPBROKER"})
@click.version_option(__version__, prog_name="amqpbroker")
def main() -> None:
    """amqpbroker: an AMQP 0-9-1 message broker that RabbitMQ clients use unchanged."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, envvar="AMQPBROKER_HOST",
              help="Address to listen on.")
@click.option("--port", default=5672, show_default=True, envvar="AMQPBROKER_PORT",
              type=click.IntRange(0, 65535), help="AMQP port (0 picks a free one).")
@click.option("--log-level", default="info", show_default=True, envvar="AMQPBROKER_LOG_LEVEL",
              type=click.Choice(LOG_LEVELS, case_sensitive=False))
@click.option("--default-user", default="guest", show_default=True,
              envvar=["AMQPBROKER_DEFAULT_USER", "RABBITMQ_DEFAULT_USER"])
@click.option("--default-pass", default="guest", show_default=True,
              envvar=["AMQPBROKER_DEFAULT_PASS", "RABBITMQ_DEFAULT_PASS"])
@click.option("--default-vhost", default="/", show_default=True,
              envvar=["AMQPBROKER_DEFAULT_VHOST", "RABBITMQ_DEFAULT_VHOST"])
@click.option("--heartbeat", default=60, show_default=True, envvar="AMQPBROKER_HEARTBEAT",
              type=click.IntRange(0, 65535), help="Heartbeat interval offered, in seconds.")
@click.option("--consumer-timeout", default=None, envvar="AMQPBROKER_CONSUMER_TIMEOUT",
              type=click.IntRange(1), help="Consumer acknowledgement timeout in ms (off).")
@click.option("--data-dir", default=None, envvar="AMQPBROKER_DATA_DIR",
              help="Directory for durable definitions and persistent messages "
                   "(default: none, nothing survives a restart).")
@click.option("--disk-free-limit", default=50_000_000, show_default=True,
              envvar="AMQPBROKER_DISK_FREE_LIMIT", type=click.IntRange(0),
              help="Bytes that must stay free in the data directory.")
def serve(host: str, port: int, log_level: str, default_user: str, default_pass: str,
          default_vhost: str, heartbeat: int, consumer_timeout: int | None,
          data_dir: str | None, disk_free_limit: int) -> None:
    """Start the broker and serve until SIGINT or SIGTERM."""
    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings(host=host, port=port, log_level=log_level, default_user=default_user,
                        default_pass=default_pass, default_vhost=default_vhost,
                        heartbeat=heartbeat, consumer_timeout=consumer_timeout,
                        data_dir=data_dir, disk_free_limit=disk_free_limit)
    try:
        run(settings)
    except StoreError as exc:
        click.echo(f"amqpbroker: {exc}", err=True)
        sys.exit(1)
    except OSError as exc:
        reason = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        click.echo(f"amqpbroker: cannot listen on {host}:{port}: {reason or exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        pass
