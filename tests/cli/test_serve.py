"""The `amqpbroker serve` command as a real subprocess: start-up, options, signals."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pika
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.processes import free_port, wait_for_port

STARTUP_DEADLINE = 10.0


@contextmanager
def serve(*args: str, env: dict[str, str] | None = None, module: bool = False,
          cwd: str | None = None) -> Iterator[tuple[subprocess.Popen[str], int]]:
    port = free_port()
    command = ([sys.executable, "-m", "amqpbroker"] if module
               else [os.path.join(os.path.dirname(sys.executable), "amqpbroker")])
    proc = subprocess.Popen(
        [*command, "serve", "--port", str(port), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **(env or {})}, cwd=cwd)
    try:
        wait_for_port(port, STARTUP_DEADLINE)
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()


def connect(port: int, user: str = "guest", password: str = "guest",
            vhost: str = "/") -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", port, vhost, pika.PlainCredentials(user, password),
        connection_attempts=1))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_closes_clients_with_320_and_exits_zero(signum: int) -> None:
    with serve() as (proc, port):
        connection = connect(port)
        proc.send_signal(signum)
        deadline = time.monotonic() + 10
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as closed:
            while time.monotonic() < deadline:
                connection.process_data_events(time_limit=0.1)
        assert closed.value.reply_code == 320
        assert "CONNECTION_FORCED" in closed.value.reply_text
        assert proc.wait(timeout=10) == 0
        _, stderr = proc.communicate(timeout=10)
        assert "Traceback" not in stderr


def test_logs_one_line_saying_where_it_listens() -> None:
    with serve() as (proc, port):
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=10)
    listening = [line for line in stderr.splitlines() if "listening on" in line]
    assert listening == [listening[0]]
    assert f"amqp://127.0.0.1:{port}" in listening[0]


def test_port_in_use_is_one_clear_line() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "amqpbroker", "serve", "--port", str(port)],
            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "address already in use" in lines[0]
    assert str(port) in lines[0]
    assert "AMQPS" not in lines[0]  # TLS is off: only the port asked for is named


@pytest.mark.parametrize("args", [["--port", "notaport"], ["--log-level", "loud"],
                                  ["--bogus"]])
def test_bad_option_is_a_clear_error(args: list[str]) -> None:
    result = subprocess.run([sys.executable, "-m", "amqpbroker", "serve", *args],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "Error" in result.stderr


def test_bad_memory_watermark_is_one_line() -> None:
    result = subprocess.run([sys.executable, "-m", "amqpbroker", "serve",
                             "--memory-high-watermark", "lots"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert result.stderr.strip() == ("amqpbroker: --memory-high-watermark: 'lots' is "
                                     "neither a fraction of RAM (0.4) nor a size (512MiB)")


def test_options_from_environment_and_python_m() -> None:
    env = {"RABBITMQ_DEFAULT_USER": "alice", "RABBITMQ_DEFAULT_PASS": "s3cret",
           "AMQPBROKER_DEFAULT_VHOST": "dev"}
    with serve(env=env, module=True) as (_, port):
        connection = connect(port, "alice", "s3cret", "dev")
        assert connection.is_open
        connection.close()
        with pytest.raises(pika.exceptions.ProbableAuthenticationError):
            connect(port, "guest", "guest", "dev")


def test_amqpbroker_env_port_and_log_level() -> None:
    port = free_port()
    env = {**os.environ, "AMQPBROKER_PORT": str(port), "AMQPBROKER_LOG_LEVEL": "warning"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "amqpbroker", "serve"], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_port(port, STARTUP_DEADLINE)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=10)
        assert proc.returncode == 0
        assert "listening on" not in stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_config_file_and_command_line_precedence(tmp_path: os.PathLike[str]) -> None:
    config = os.path.join(tmp_path, "broker.toml")
    with open(config, "w") as file:
        file.write('default_user = "carol"\ndefault_pass = "pw"\nlog_level = "warning"\n')
    with serve("--config", config, "--default-pass", "override") as (_, port):
        connection = connect(port, "carol", "override")
        assert connection.is_open
        connection.close()


@pytest.mark.parametrize(("content", "message"), [
    ("bogus = 1\n", "unknown setting 'bogus'"),
    ("port = 'x'\n", "'port' must be int"),
    ("port = \n", "broker.toml"),
])
def test_bad_config_file_is_one_clear_line(tmp_path: os.PathLike[str], content: str,
                                           message: str) -> None:
    config = os.path.join(tmp_path, "broker.toml")
    with open(config, "w") as file:
        file.write(content)
    result = subprocess.run([sys.executable, "-m", "amqpbroker", "serve", "--config", config],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_max_connections(tmp_path: os.PathLike[str]) -> None:
    with serve("--max-connections", "1") as (_, port):
        first = connect_when_free(port)  # the readiness probe may still hold the slot
        with pytest.raises(pika.exceptions.AMQPConnectionError):
            connect(port)
        first.close()
        connect_when_free(port).close()


def connect_when_free(port: int, timeout: float = 10) -> pika.BlockingConnection:
    """Connect once the server has finished with the connection that held the slot."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return connect(port)
        except pika.exceptions.AMQPConnectionError:
            assert time.monotonic() < deadline, "the connection slot never came free"


def test_definitions_at_start_and_export(tmp_path: os.PathLike[str]) -> None:
    example = os.path.join(os.path.dirname(__file__), "..", "..", "config",
                           "definitions.example.json")
    data_dir = os.path.join(tmp_path, "data")
    with serve("--definitions", example, "--data-dir", data_dir) as (proc, _):
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    result = subprocess.run(
        [sys.executable, "-m", "amqpbroker", "definitions", "export", "--data-dir", data_dir],
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    exported = json.loads(result.stdout)
    with open(example) as file:
        expected = json.load(file)
    assert {q["name"] for q in exported["queues"]} == {
        q["name"] for q in expected["queues"] if q.get("durable", True)}
    assert {u["name"] for u in exported["users"]} == {u["name"] for u in expected["users"]}
    assert {(p["user"], p["vhost"]) for p in exported["permissions"]} == {
        (p["user"], p["vhost"]) for p in expected["permissions"]}
    assert exported["topic_permissions"] == expected["topic_permissions"]


def _export(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "amqpbroker", "definitions", "export", *args],
                          capture_output=True, text=True, timeout=30)


def test_export_of_a_missing_data_dir_fails(tmp_path: os.PathLike[str]) -> None:
    missing = os.path.join(tmp_path, "nowhere")
    result = _export("--data-dir", missing)
    assert result.returncode != 0
    assert result.stderr.strip() == f"amqpbroker: {missing}: no such data directory"
    assert not os.path.exists(missing)


def test_export_of_a_data_dir_without_a_store_fails(tmp_path: os.PathLike[str]) -> None:
    result = _export("--data-dir", str(tmp_path))
    assert result.returncode != 0
    assert result.stderr.strip() == (f"amqpbroker: {tmp_path}: holds no amqpbroker store "
                                     "(amqpbroker.sqlite3)")
    assert os.listdir(tmp_path) == []


def test_config_file_paths_are_relative_to_its_folder(tmp_path: os.PathLike[str]) -> None:
    folder = os.path.join(tmp_path, "conf")
    os.mkdir(folder)
    with open(os.path.join(folder, "defs.json"), "w") as file:
        json.dump({"users": [{"name": "dave", "password": "pw", "tags": []}],
                   "permissions": [{"user": "dave", "vhost": "/", "configure": ".*",
                                    "write": ".*", "read": ".*"}]}, file)
    config = os.path.join(folder, "broker.toml")
    with open(config, "w") as file:
        file.write('definitions = "defs.json"\ndata_dir = "state"\n')
    with serve("--config", config, cwd=str(tmp_path)) as (_, port):
        connect(port, "dave", "pw").close()
    assert os.path.isfile(os.path.join(folder, "state", "amqpbroker.sqlite3"))


def test_bad_definitions_name_the_entry(tmp_path: os.PathLike[str]) -> None:
    bad = os.path.join(tmp_path, "defs.json")
    with open(bad, "w") as file:
        json.dump({"queues": [{"name": "q", "vhost": "nope"}]}, file)
    result = subprocess.run([sys.executable, "-m", "amqpbroker", "serve", "--definitions", bad],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "queues[0]" in result.stderr and "defs.json" in result.stderr


@pytest.mark.parametrize("content", [None, "not a certificate\n"])
def test_unusable_tls_files_are_one_line_naming_the_file(tmp_path: os.PathLike[str],
                                                         content: str | None) -> None:
    cert = os.path.join(tmp_path, "server.pem")
    if content is not None:
        with open(cert, "w") as file:
            file.write(content)
    result = subprocess.run([sys.executable, "-m", "amqpbroker", "serve", "--port", "0",
                             "--tls-port", "0", "--tls-cert", cert],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert cert in result.stderr


def test_management_api_and_metrics_beside_amqp() -> None:
    """`serve` with the HTTP ports: the management API answers with RabbitMQ's shapes and
    the metrics in Prometheus' text format, and SIGTERM still stops everything."""
    management, prometheus = free_port(), free_port()
    with serve("--management-port", str(management), "--prometheus-port",
               str(prometheus)) as (proc, port):
        wait_for_port(management, 10)
        wait_for_port(prometheus, 10)
        whoami = httpx.get(f"http://127.0.0.1:{management}/api/whoami",
                           auth=("guest", "guest"), timeout=5)
        assert whoami.json() == {"name": "guest", "tags": ["administrator"]}
        assert httpx.get(f"http://127.0.0.1:{management}/api/overview",
                         timeout=5).status_code == 401
        metrics = httpx.get(f"http://127.0.0.1:{prometheus}/metrics", timeout=5).text
        names = {family.name for family in text_string_to_metric_families(metrics)}
        assert {"rabbitmq_identity_info", "rabbitmq_queues"} <= names
        connect(port).close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_management_port_in_use_is_one_clear_line() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "amqpbroker", "serve", "--port", str(free_port()),
             "--management-port", str(taken)], capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"the management port {taken}" in lines[0]
    assert "address already in use" in lines[0]
