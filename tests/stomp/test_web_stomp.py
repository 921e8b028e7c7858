"""STOMP over WebSocket (Web STOMP) with a real WebSocket client (websockets): the
handshake and its subprotocols, a subscription with acks, SEND and MESSAGE across Web
STOMP, plain STOMP and AMQP, heart-beats, bad input and a dropped WebSocket that leave the
other connections alone, a resource alarm, the management API's protocol name, a broker
shutdown that closes WebSocket clients at once, and the README's example."""

from __future__ import annotations

import contextlib
import io
import re
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pika
import pytest
from support.processes import free_port
from support.stomp_clients import StompConnector
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from amqpbroker.protocol.stomp.frames import Frame, FrameLimits, FrameParser
from amqpbroker.testing import EmbeddedBroker, broker_in_thread, wait_for

pytestmark = pytest.mark.timeout(60)
TIMEOUT = 10.0
README = Path(__file__).resolve().parents[2] / "README.md"


class WebStomp:
    """One WebSocket to the Web STOMP port: frames out as text messages, frames in (read
    with the broker's own frame parser, heart-beat EOLs counted)."""

    def __init__(self, port: int, subprotocols: list[str] | None = None,
                 path: str = "/ws") -> None:
        self.stack = contextlib.ExitStack()
        self.ws: ClientConnection = self.stack.enter_context(connect(
            f"ws://127.0.0.1:{port}{path}", open_timeout=TIMEOUT, close_timeout=1, max_size=None,
            subprotocols=["v12.stomp"] if subprotocols is None else subprotocols or None))
        self.parser = FrameParser(FrameLimits(max_body=1 << 30))
        self.frames: list[Frame] = []
        self.messages: list[str | bytes] = []

    def __enter__(self) -> WebStomp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stack.close()

    def send(self, command: str, body: str = "", **headers: str) -> None:
        lines = "".join(f"{name.replace('_', '-')}:{value}\n"
                        for name, value in headers.items())
        self.ws.send(f"{command}\n{lines}\n{body}\x00")

    def connect(self, version: str = "1.2", **headers: str) -> Frame:
        self.send("CONNECT", **{"accept-version": version, "host": "/", "login": "guest",
                                "passcode": "guest", **headers})
        frame = self.frame()
        assert frame.command == "CONNECTED", frame
        return frame

    def _read(self, timeout: float) -> None:
        message = self.ws.recv(timeout=timeout)
        self.messages.append(message)
        self.frames.extend(self.parser.feed(
            message.encode() if isinstance(message, str) else message))

    def frame(self, timeout: float = TIMEOUT) -> Frame:
        """The next frame; ConnectionClosed if the WebSocket closes first."""
        deadline = time.monotonic() + timeout
        while not self.frames:
            self._read(max(deadline - time.monotonic(), 0.0))
        return self.frames.pop(0)

    def closed(self, timeout: float = TIMEOUT) -> list[Frame]:
        """Read until the server closes the WebSocket: the frames that came first."""
        deadline = time.monotonic() + timeout
        with pytest.raises(ConnectionClosed):
            while True:
                self._read(max(deadline - time.monotonic(), 0.0))
        frames, self.frames = self.frames, []
        return frames


@pytest.fixture
def ports() -> dict[str, int]:
    return {"web_stomp_port": free_port(), "management_port": free_port()}


@pytest.fixture
def broker(ports: dict[str, int]) -> Iterator[EmbeddedBroker]:
    """The suite's broker, with Web STOMP and the management API on too."""
    with broker_in_thread(stomp_port=free_port(), **ports) as embedded:
        yield embedded


@pytest.fixture
def web_port(broker: EmbeddedBroker, ports: dict[str, int]) -> int:
    return ports["web_stomp_port"]


@pytest.fixture
def management_port(broker: EmbeddedBroker, ports: dict[str, int]) -> int:
    return ports["management_port"]


def test_connect_subscribe_send_message_ack(broker: EmbeddedBroker, web_port: int) -> None:
    with WebStomp(web_port) as client:
        assert client.ws.subprotocol == "v12.stomp"
        assert client.connect().headers["version"] == "1.2"
        client.send("SUBSCRIBE", id="s1", destination="/queue/web", ack="client-individual",
                    receipt="subscribed")
        assert client.frame().headers["receipt-id"] == "subscribed"
        client.send("SEND", "hello", destination="/queue/web", receipt="sent")
        frames = [client.frame(), client.frame()]
        [message] = [frame for frame in frames if frame.command == "MESSAGE"]
        assert [frame.headers.get("receipt-id") for frame in frames
                if frame.command == "RECEIPT"] == ["sent"]
        assert message.body == b"hello"
        assert message.headers["subscription"] == "s1"
        assert message.headers["destination"] == "/queue/web"
        assert broker.queue("web").unacked == 1
        client.send("ACK", id=message.headers["ack"], receipt="acked")
        assert client.frame().headers["receipt-id"] == "acked"
        assert broker.queue("web").unacked == 0
        assert all(isinstance(text, str) for text in client.messages)  # text frames


def test_a_binary_body_comes_as_a_binary_message(web_port: int) -> None:
    with WebStomp(web_port) as client:
        client.connect()
        client.send("SUBSCRIBE", id="s", destination="/queue/raw")
        client.ws.send(b"SEND\ndestination:/queue/raw\ncontent-length:3\n\n\xff\x00\xfe\x00")
        assert client.frame().body == b"\xff\x00\xfe"
        assert isinstance(client.messages[-1], bytes)


def test_a_body_larger_than_websockets_default_limit(web_port: int) -> None:
    body = b"x" * (17 * 1024 * 1024)
    with WebStomp(web_port) as client:
        client.connect()
        client.send("SUBSCRIBE", id="s", destination="/queue/big")
        client.ws.send(b"SEND\ndestination:/queue/big\n\n" + body + b"\x00")
        assert client.frame().body == body


@pytest.mark.parametrize(("offered", "chosen"), [
    (["v12.stomp"], "v12.stomp"), (["v11.stomp"], "v11.stomp"), (["v10.stomp"], "v10.stomp"),
    (["stomp"], "stomp"), (["chat", "v11.stomp", "v12.stomp"], "v12.stomp"), ([], None)])
def test_the_subprotocol_is_negotiated(web_port: int, offered: list[str],
                                       chosen: str | None) -> None:
    with WebStomp(web_port, offered) as client:
        assert client.ws.subprotocol == chosen
        client.connect()


@pytest.mark.parametrize(("offered", "path"), [(["mqtt"], "/ws"), (["chat"], "/ws"),
                                               (["v12.stomp"], "/stomp")])
def test_a_bad_subprotocol_or_path_is_refused(web_port: int, offered: list[str],
                                              path: str) -> None:
    with pytest.raises(InvalidStatus) as refused:
        WebStomp(web_port, offered, path)
    assert refused.value.response.status_code in (403, 404)
    with WebStomp(web_port) as client:  # and the listener still serves
        client.connect()


def test_a_refusing_broker_refuses_websockets_too(web_port: int,
                                                  broker: EmbeddedBroker) -> None:
    broker.refuse_connections(30)
    with pytest.raises(InvalidStatus):
        WebStomp(web_port)
    broker.refuse_connections(0)
    with WebStomp(web_port) as client:
        client.connect()


def test_plain_http_gets_a_404(web_port: int) -> None:
    assert httpx.get(f"http://127.0.0.1:{web_port}/ws", timeout=TIMEOUT).status_code == 404


def test_web_stomp_and_amqp(web_port: int, broker: EmbeddedBroker,
                            amqp: pika.adapters.blocking_connection.BlockingChannel) -> None:
    queue = amqp.queue_declare("", exclusive=True).method.queue
    amqp.queue_bind(queue, "amq.topic", "news.#")
    with WebStomp(web_port) as client:
        client.connect()
        client.send("SUBSCRIBE", id="s", destination="/queue/from-amqp", receipt="r")
        assert client.frame().command == "RECEIPT"
        amqp.basic_publish("", "from-amqp", b"to web",
                           pika.BasicProperties(content_type="text/plain"))
        message = client.frame()
        assert (message.body, message.headers["content-type"]) == (b"to web", "text/plain")
        client.send("SEND", "to amqp", destination="/topic/news.web", receipt="sent")
        assert client.frame().headers["receipt-id"] == "sent"
    method, _, body = amqp.basic_get(queue, auto_ack=True)
    assert (method.routing_key, body) == ("news.web", b"to amqp")


def test_web_stomp_and_plain_stomp(web_port: int, stomp_connect: StompConnector) -> None:
    plain, collector = stomp_connect()
    plain.subscribe("/topic/chat", id="p", receipt="plain-subscribed")
    collector.wait_receipt("plain-subscribed")
    with WebStomp(web_port) as client:
        client.connect()
        client.send("SUBSCRIBE", id="w", destination="/topic/chat", receipt="web-subscribed")
        assert client.frame().headers["receipt-id"] == "web-subscribed"
        client.send("SEND", "from web", destination="/topic/chat")
        plain.send("/topic/chat", "from plain")
        bodies = {client.frame().body, client.frame().body}
        assert bodies == {b"from web", b"from plain"}
    assert sorted(m.body for m in collector.wait_messages(2)) == ["from plain", "from web"]


def test_the_server_sends_heartbeats(web_port: int) -> None:
    with WebStomp(web_port) as client:
        assert client.connect(**{"heart-beat": "0,1000"}).headers["heart-beat"] == "1000,0"
        deadline = time.monotonic() + 5
        while client.parser.heartbeats < 2:
            client._read(max(deadline - time.monotonic(), 0.0))
        assert client.frames == []
        assert "\n" in client.messages


def test_a_client_that_sends_heartbeats_stays_and_a_silent_one_is_closed(
        web_port: int) -> None:
    with WebStomp(web_port) as beating, WebStomp(web_port) as silent:
        beating.connect(**{"heart-beat": "1000,0"})
        silent.connect(**{"heart-beat": "1000,0"})
        started = time.monotonic()
        while time.monotonic() - started < 4.5:  # longer than three silent intervals
            beating.ws.send("\n")
            with pytest.raises(TimeoutError):
                beating._read(0.5)
        assert silent.closed(timeout=1) == []
        beating.send("SEND", "x", destination="/queue/beat", receipt="alive")
        assert beating.frame().headers["receipt-id"] == "alive"


def test_bad_input_closes_that_connection_only(web_port: int,
                                               stomp_connect: StompConnector) -> None:
    plain, collector = stomp_connect()
    with WebStomp(web_port) as good, WebStomp(web_port) as bad:
        good.connect()
        bad.connect()
        bad.ws.send(b"NONSENSE\n\n\x00")
        [error] = bad.closed()
        assert error.command == "ERROR"
        with WebStomp(web_port) as early:  # not even a CONNECT
            early.ws.send(b"\xff\xfe garbage\n\n\x00")
            assert [frame.command for frame in early.closed()] == ["ERROR"]
        good.send("SEND", "still", destination="/queue/alive", receipt="r")
        assert good.frame().headers["receipt-id"] == "r"
    plain.send("/queue/alive", "too", receipt="p")
    collector.wait_receipt("p")


def test_a_dropped_websocket_requeues_its_unacked_messages(web_port: int,
                                                          broker: EmbeddedBroker) -> None:
    with WebStomp(web_port) as other, WebStomp(web_port) as dropped:
        other.connect()
        dropped.connect()
        dropped.send("SUBSCRIBE", id="s", destination="/queue/work", ack="client")
        for n in range(2):
            other.send("SEND", str(n), destination="/queue/work", receipt=f"r{n}")
            assert other.frame().headers["receipt-id"] == f"r{n}"
        assert [dropped.frame().body, dropped.frame().body] == [b"0", b"1"]
        sock = dropped.ws.socket
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)
        wait_for(lambda: broker.queue("work").ready == 2, what="the messages requeued")
        wait_for(lambda: len(broker.connections()) == 1, what="the dropped one gone")
        other.send("SUBSCRIBE", id="again", destination="/queue/work")
        redelivered = [other.frame(), other.frame()]
        assert [frame.body for frame in redelivered] == [b"0", b"1"]
        assert all(frame.headers["redelivered"] == "true" for frame in redelivered)


def test_a_resource_alarm_holds_sends_until_it_clears(web_port: int,
                                                      broker: EmbeddedBroker) -> None:
    with WebStomp(web_port) as client:
        client.connect()
        broker.block_publishers()
        try:
            client.send("SEND", "held", destination="/queue/alarm", receipt="sent")
            with pytest.raises(TimeoutError):
                client.frame(timeout=0.5)
            assert "alarm" not in [queue.name for queue in broker.queues()]
        finally:
            broker.unblock_publishers()
        assert client.frame().headers["receipt-id"] == "sent"
        assert broker.queue("alarm").depth == 1


@pytest.mark.parametrize("version", ["1.2", "1.1", "1.0"])
def test_management_names_the_protocol(broker: EmbeddedBroker, web_port: int,
                                       management_port: int, stomp_connect: StompConnector,
                                       version: str) -> None:
    stomp_connect()
    with WebStomp(web_port) as client:
        client.connect(version=version)
        url = f"http://127.0.0.1:{management_port}"
        found = httpx.get(url + "/api/connections", auth=("guest", "guest"),
                          timeout=TIMEOUT).json()
        assert sorted(c["protocol"] for c in found) == ["STOMP 1.2", f"Web STOMP {version}"]


def test_broker_shutdown_closes_websocket_clients_at_once() -> None:
    port = free_port()
    with broker_in_thread(web_stomp_port=port) as embedded:
        client = WebStomp(port)
        client.connect()
        client.send("SUBSCRIBE", id="s", destination="/queue/q")
        wait_for(lambda: embedded.connections(), what="the connection")
        started = time.monotonic()
    [error] = client.closed(timeout=5)
    assert error.command == "ERROR"
    assert "shutdown" in error.body.decode()
    assert time.monotonic() - started < 2
    with pytest.raises(OSError):  # the port is free: nothing listens
        WebStomp(port)


def test_the_readme_example(web_port: int) -> None:
    text = README.read_text()
    section = text[text.index("### Over WebSocket\n"):]
    [example] = re.findall(r"```python\n(.*?)```", section[:section.index("\n## ")], re.S)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(example.replace("15674", str(web_port)), {})
    assert printed.getvalue() == "CONNECTED\nhello\n"
