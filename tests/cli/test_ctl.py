"""`amqpbroker ctl` against a running broker's management API: through click's runner
for the commands, and once through the real entry point as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest
from click.testing import CliRunner
from support.processes import free_port

from amqpbroker.cli import main
from amqpbroker.testing import EmbeddedBroker, broker_in_thread


@pytest.fixture
def managed() -> Iterator[tuple[EmbeddedBroker, str]]:
    port = free_port()
    with broker_in_thread(management_port=port) as running:
        yield running, f"http://guest:guest@127.0.0.1:{port}"


def ctl(url: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["ctl", "--url", url, *args])
    return result.exit_code, result.output


def test_queues_listed_tab_separated_and_as_json(managed: tuple[EmbeddedBroker, str]) -> None:
    broker, url = managed
    connection = pika.BlockingConnection(pika.URLParameters(broker.url))
    channel = connection.channel()
    channel.queue_declare("jobs")
    channel.basic_publish("", "jobs", b"x")
    channel.queue_declare("jobs", passive=True)  # a round trip: the publish is queued
    assert ctl(url, "list_queues") == (0, "name\tmessages\njobs\t1\n")
    code, output = ctl(url, "list_queues", "name", "consumers", "--formatter", "json")
    assert code == 0 and json.loads(output) == [{"name": "jobs", "consumers": 0}]
    assert ctl(url, "purge_queue", "jobs")[0] == 0
    assert ctl(url, "list_queues")[1] == "name\tmessages\njobs\t0\n"
    assert ctl(url, "delete_queue", "jobs")[0] == 0
    assert ctl(url, "list_queues")[1] == "name\tmessages\n"
    connection.close()


def test_users_vhosts_permissions_and_policies(managed: tuple[EmbeddedBroker, str]) -> None:
    broker, url = managed
    for args in (("add_vhost", "dev"), ("add_user", "app", "pw"),
                 ("set_user_tags", "app", "management"),
                 ("set_permissions", "-p", "dev", "app", ".*", ".*", ".*"),
                 ("set_policy", "-p", "dev", "--apply-to", "queues", "ttl", "^q",
                  '{"message-ttl": 1000}')):
        assert ctl(url, *args) == (0, ""), args
    assert "app\tmanagement" in ctl(url, "list_users")[1]
    assert ctl(url, "list_permissions", "-p", "dev")[1].splitlines()[1] == "app\t.*\t.*\t.*"
    assert '{"message-ttl": 1000}' in ctl(url, "list_policies", "-p", "dev")[1]
    pika.BlockingConnection(pika.URLParameters(
        f"amqp://app:pw@127.0.0.1:{broker.port}/dev")).close()
    assert ctl(url, "change_password", "app", "new")[0] == 0
    assert ctl(url, "clear_policy", "-p", "dev", "ttl")[0] == 0
    assert ctl(url, "clear_permissions", "-p", "dev", "app")[0] == 0
    assert ctl(url, "delete_user", "app")[0] == 0
    assert ctl(url, "delete_vhost", "dev")[0] == 0
    assert ctl(url, "list_vhosts")[1] == "name\n/\n"


def test_definitions_round_trip(managed: tuple[EmbeddedBroker, str], tmp_path: Path) -> None:
    _, url = managed
    path = tmp_path / "defs.json"
    assert ctl(url, "export_definitions", str(path))[0] == 0
    document = json.loads(path.read_text())
    document["queues"].append({"name": "imported", "vhost": "/", "durable": True,
                               "auto_delete": False, "arguments": {}})
    path.write_text(json.dumps(document))
    assert ctl(url, "import_definitions", str(path))[0] == 0
    assert "imported" in ctl(url, "list_queues")[1]


def test_errors_are_one_line(managed: tuple[EmbeddedBroker, str]) -> None:
    _, url = managed
    code, output = ctl(url, "delete_queue", "nothing")
    assert code != 0
    assert output.strip() == "Error: DELETE /api/queues/%2F/nothing: 404 Not Found"
    code, output = ctl(url, "set_policy", "p", ".*", "{not json")
    assert code != 0 and "not JSON" in output
    code, output = ctl(f"http://guest:guest@127.0.0.1:{free_port()}", "ping")
    assert code != 0 and output.startswith("Error: cannot reach")


def test_status_ping_and_close_connection(managed: tuple[EmbeddedBroker, str]) -> None:
    broker, url = managed
    assert ctl(url, "ping") == (0, "Ping succeeded\n")
    assert "listener: amqp 127.0.0.1:" in ctl(url, "status")[1]
    connection = pika.BlockingConnection(pika.URLParameters(broker.url))
    _, output = ctl(url, "list_connections", "name", "--formatter", "json")
    (name,) = [row["name"] for row in json.loads(output)]
    assert ctl(url, "close_connection", name, "maintenance")[0] == 0
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as closed:
        connection.process_data_events(time_limit=5)
    assert closed.value.reply_code == 320


def test_the_real_entry_point(managed: tuple[EmbeddedBroker, str]) -> None:
    _, url = managed
    command = [os.path.join(os.path.dirname(sys.executable), "amqpbroker"), "ctl",
               "await_startup", "--timeout", "10"]
    result = subprocess.run(command, env={**os.environ, "AMQPBROKER_MGMT_URL": url},
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
