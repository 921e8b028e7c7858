"""The test control over HTTP, as another language's suite uses it: `amqpbroker serve
--control-port` in a subprocess, driven with httpx while pika plays the application."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator

import httpx
import pika
import pytest
from pika.exceptions import ConnectionClosedByBroker, StreamLostError
from support.processes import free_port, serve_command, wait_for, wait_for_port

from amqpbroker.config import Settings
from amqpbroker.control.controller import Controller
from amqpbroker.control.http import control_app

pytestmark = pytest.mark.timeout(60)


class Broker:
    def __init__(self, port: int, http: httpx.Client) -> None:
        self.url = f"amqp://guest:guest@127.0.0.1:{port}/"
        self.http = http

    def connect(self, vhost: str = "") -> pika.BlockingConnection:
        return pika.BlockingConnection(pika.URLParameters(self.url + vhost))


def _start(tmp_path, *options: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    process = subprocess.Popen(serve_command(port, tmp_path / "data", *options))
    wait_for_port(port, 20)
    return process, port


@pytest.fixture
def broker(tmp_path) -> Iterator[Broker]:
    control = free_port()
    process, port = _start(tmp_path, "--control-port", str(control))
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{control}/api/test/",
                          timeout=10) as http:
            wait_for(lambda: _answers(http), what="the control port")
            yield Broker(port, http)
    finally:
        process.terminate()
        assert process.wait(10) == 0


def _answers(http: httpx.Client) -> bool:
    try:
        return http.get("queues").status_code == 200
    except httpx.TransportError:
        return False


def _answers_with(http: httpx.Client, queues: list[object]) -> bool:
    try:
        return http.get("queues").json() == queues
    except httpx.TransportError:
        return False


def test_inspect_and_wait(broker: Broker) -> None:
    connection = broker.connect()
    channel = connection.channel()
    channel.queue_declare("jobs")
    channel.basic_publish("", "jobs", b"job 1", pika.BasicProperties(headers={"n": 1}))
    waited = broker.http.post("wait", json={"condition": "queue_depth", "queue": "jobs",
                                            "depth": 1})
    assert waited.status_code == 200
    assert waited.json()["ready"] == 1 and waited.json()["depth"] == 1
    [message] = broker.http.get("messages", params={"queue": "jobs"}).json()
    assert (message["body"], message["body_encoding"]) == ("job 1", "string")
    assert message["headers"] == {"n": 1}
    [conn] = broker.http.get("connections").json()
    assert conn["client_properties"]["product"] == "Pika Python Client Library"
    assert broker.http.get("confirms").json() == {"outstanding": 0}
    timed_out = broker.http.post("wait", json={"condition": "queue_depth", "queue": "jobs",
                                               "depth": 2, "timeout": 0.1})
    assert timed_out.status_code == 408
    assert timed_out.json()["reason"].endswith(
        "queue 'jobs' has 1 ready, 0 unacked, 0 consumers: b'job 1'")
    connection.close()


def test_clock_and_vhosts(broker: Broker) -> None:
    vhost = broker.http.post("vhosts", json={}).json()["name"]
    connection = broker.connect(vhost)
    channel = connection.channel()
    channel.queue_declare("ttl", arguments={"x-message-ttl": 3_600_000})
    channel.basic_publish("", "ttl", b"old")
    params = {"vhost": vhost, "queue": "ttl"}
    wait_for(lambda: broker.http.get("queue", params=params).json()["ready"] == 1)
    assert broker.http.post("clock/advance", json={"seconds": 3600}).json() == {
        "offset": 3600.0}
    assert broker.http.get("queue", params=params).json()["ready"] == 0
    assert broker.http.delete("vhosts", params={"name": vhost}).status_code == 204
    with pytest.raises((ConnectionClosedByBroker, StreamLostError)):
        connection.process_data_events(time_limit=5)


def test_faults_and_restart(broker: Broker) -> None:
    connection = broker.connect()
    [conn] = broker.http.get("connections").json()
    closed = broker.http.post("connections/close", json={"name": conn["name"],
                                                          "text": "failover"})
    assert closed.status_code == 204
    with pytest.raises(ConnectionClosedByBroker, match="CONNECTION_FORCED - failover"):
        connection.process_data_events(time_limit=5)
    channel = broker.connect().channel()
    channel.queue_declare("durable", durable=True)
    channel.confirm_delivery()
    channel.basic_publish("", "durable", b"kept", pika.BasicProperties(delivery_mode=2))
    assert broker.http.post("restart").status_code == 204
    assert broker.http.get("queue", params={"queue": "durable"}).json()["ready"] == 1
    assert broker.http.post("connections/refuse", json={"seconds": 30}).status_code == 204
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        broker.connect("?connection_attempts=1")
    assert broker.http.post("connections/refuse", json={"seconds": 0}).status_code == 204
    broker.connect().close()


def test_drop_a_connection(broker: Broker) -> None:
    """The served broker runs on uvloop, whose socket objects refuse `shutdown`."""
    connection = broker.connect()
    [conn] = broker.http.get("connections").json()
    assert broker.http.post("connections/drop", json={"name": conn["name"]}).status_code == 204
    with pytest.raises(StreamLostError):
        for _ in range(50):
            connection.process_data_events(time_limit=0.1)
    wait_for(lambda: broker.http.get("connections").json() == [], what="the connection gone")


def test_bad_requests(broker: Broker) -> None:
    assert broker.http.get("queue").status_code == 400
    missing = broker.http.get("queue", params={"queue": "nope"})
    assert missing.status_code == 404
    assert missing.json() == {"error": "not_found",
                              "reason": "no queue 'nope' in vhost '/' (queues: none)"}
    assert broker.http.post("wait", content=b"{not json").status_code == 400
    assert broker.http.post("wait", json={"condition": "sunrise"}).status_code == 400
    assert broker.http.post("clock/advance", json={"seconds": "soon"}).status_code == 400
    assert broker.http.post("clock/advance", content=b'{"seconds": NaN}').status_code == 400
    assert broker.http.post("clock/advance", json={"seconds": -1}).status_code == 400
    assert broker.http.post("connections/drop", json={"name": "x"}).status_code == 404


def test_on_the_management_port(tmp_path) -> None:
    management = free_port()
    process, port = _start(tmp_path, "--management-port", str(management), "--test-control")
    try:
        base = f"http://127.0.0.1:{management}/api/"
        wait_for(lambda: _answers(httpx.Client(base_url=base + "test/")), what="the API")
        assert httpx.get(base + "test/queues").json() == []
        assert httpx.get(base + "overview", auth=("guest", "guest")).status_code == 200
        Broker(port, httpx.Client()).connect().channel().queue_declare("transient")
        assert [q["name"] for q in httpx.get(base + "test/queues").json()] == ["transient"]
        assert httpx.post(base + "test/restart").status_code == 202
        wait_for(lambda: _answers_with(httpx.Client(base_url=base + "test/"), []),
                 what="the restart, which drops the transient queue")
    finally:
        process.terminate()
        assert process.wait(10) == 0


def test_a_stop_during_a_restart_still_stops(tmp_path) -> None:
    management = free_port()
    process, _ = _start(tmp_path, "--management-port", str(management), "--test-control")
    try:
        http = httpx.Client(base_url=f"http://127.0.0.1:{management}/api/test/")
        wait_for(lambda: _answers(http), what="the API")
        assert http.post("restart").status_code == 202
    finally:
        process.terminate()
        assert process.wait(10) == 0


def test_a_port_in_use_is_one_clear_line(tmp_path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(serve_command(port, None, "--control-port", str(free_port())),
                                capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"amqpbroker: cannot listen on 127.0.0.1 (port {port} or the control port "
        f"{result.args[-1]}): address already in use"]


async def test_a_broker_between_stop_and_restart_answers_503() -> None:
    """While the broker restarts there is none to inspect: the API says so, in JSON."""
    app = control_app(Controller(Settings(port=0)), restart_waits=True)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://test") as http:
        answer = await http.get("/queues")
    assert answer.status_code == 503
    assert answer.json() == {"error": "unavailable", "reason": "the broker is not running"}
