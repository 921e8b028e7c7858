"""Hostile STOMP input: each gets an ERROR frame with a `message` header and a close of
that connection only, while a stomp.py client beside it goes on working."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
import stomp
from support.processes import free_port
from support.stompraw import RawStomp

from amqpbroker.testing import EmbeddedBroker, broker_in_thread, wait_for

pytestmark = pytest.mark.timeout(60)


class Bystander(stomp.ConnectionListener):
    def __init__(self) -> None:
        self.bodies: list[str] = []

    def on_message(self, frame: stomp.utils.Frame) -> None:
        self.bodies.append(frame.body)


@pytest.fixture
def broker() -> Iterator[EmbeddedBroker]:
    with broker_in_thread(stomp_port=free_port(), max_message_size=4096) as embedded:
        yield embedded


@pytest.fixture
def port(broker: EmbeddedBroker) -> int:
    return broker.server.frontend_ports["stomp"]


@pytest.fixture
def bystander(port: int) -> Iterator[stomp.Connection]:
    """A well-behaved connection: it must still work after each hostile one."""
    connection = stomp.Connection12([("127.0.0.1", port)], vhost="/", timeout=10)
    listener = Bystander()
    connection.set_listener("bystander", listener)
    connection.connect("guest", "guest", wait=True)
    connection.subscribe("/queue/bystander", id="b")
    yield connection
    connection.send("/queue/bystander", "still here")
    wait_for(lambda: "still here" in listener.bodies, what="the bystander's message")
    connection.disconnect()


PRE_CONNECT = [
    (b"SEND\ndestination:/queue/a\n\nx\x00", "Illegal command"),
    (b"CONNECT\naccept-version:3.0\n\n\x00", "Version mismatch"),
    (b"CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:wrong\n\n\x00",
     "Bad CONNECT"),
    (b"CONNECT\naccept-version:1.2\nhost:nowhere\n\n\x00", "Bad CONNECT"),
    (b"CONNECT\naccept-version:1.2\nheart-beat:x\n\n\x00", "Invalid heart-beat header"),
    (b"CONNECT\n" + b"k:" + b"x" * 70000 + b"\n\n\x00", "Frame too large"),
    (b"\x00\x01\x02garbage\n\n\x00", "Illegal command"),
    (b"CONNECT\nno colon here\n\n\x00", "Bad header"),
]


@pytest.mark.parametrize(("data", "message"), PRE_CONNECT)
def test_before_connect(port: int, bystander: stomp.Connection, data: bytes,
                        message: str) -> None:
    with RawStomp(port) as raw:
        raw.send(data)
        error = raw.closed_with_error()
        assert error.headers["message"] == message
        assert error.headers["content-type"] == "text/plain"
        assert int(error.headers["content-length"]) == len(error.body)


CONNECTED = [
    (b"SEND\ndestination:/queue/a\nk:a\\tb\n\n\x00", "Bad header"),
    (b"SEND\ndestination:/queue/a\ncontent-length:2\n\nabc\x00", "Bad frame"),
    (b"SEND\ndestination:/queue/a\ncontent-length:-4\n\n\x00", "Invalid content-length"),
    (b"SEND\ndestination:/queue/a\ncontent-length:99999\n\n\x00", "Frame too large"),
    (b"SEND\ndestination:/queue/a\n\n" + b"x" * 5000, "Frame too large"),
    (b"SEND\n" + b"".join(b"h%d:v\n" % n for n in range(1100)) + b"\n\x00",
     "Frame too large"),
    (b"SEND\nk:\xff\xfe\n\n\x00", "Bad frame"),
    (b"FLY\n\n\x00", "Bad command"),
    (b"MESSAGE\n\n\x00", "Bad command"),
    (b"CONNECT\n\n\x00", "Bad command"),
    (b"SEND\n\nno destination\x00", "Missing destination"),
    (b"SEND\ndestination:/bogus/x\n\n\x00", "Unknown destination"),
    (b"SEND\ndestination:/temp-queue/x\n\n\x00", "Invalid destination"),
    (b"SEND\ndestination:/queue/a\nmessage-id:1\n\n\x00", "Invalid header"),
    (b"SEND\ndestination:/queue/a\ncontent-type:" + b"t" * 300 + b"\n\n\x00",
     "Invalid header"),
    (b"SEND\ndestination:/queue/a\npriority:high\n\n\x00", "Invalid header"),
    (b"SEND\ndestination:/queue/a\nexpiration:soon\n\n\x00", "precondition_failed"),
    (b"SEND\ndestination:/queue/a\nuser-id:mallory\n\n\x00", "precondition_failed"),
    (b"SEND\ndestination:/exchange/none/k\n\n\x00", "not_found"),
    (b"SEND\ndestination:/queue/amq.x\n\n\x00", "access_refused"),
    (b"SEND\ndestination:/queue/a\nx-max-length:lots\n\n\x00", "Invalid header"),
    (b"ACK\nid:nonsense\n\n\x00", "Invalid header"),
    (b"ACK\nid:T_x@@s@@1\n\n\x00", "Subscription not found"),
    (b"NACK\n\n\x00", "Invalid header"),
    (b"SUBSCRIBE\ndestination:/queue/a\nack:sometimes\n\n\x00", "Invalid header"),
    (b"SUBSCRIBE\ndestination:/queue/a\nprefetch-count:-1\n\n\x00", "Invalid header"),
    (b"SUBSCRIBE\ndestination:/queue/a\nid:1\n\n\x00SUBSCRIBE\ndestination:/queue/a\nid:1"
     b"\n\n\x00", "Duplicated subscription identifier"),
    (b"UNSUBSCRIBE\nid:never\n\n\x00", "Subscription not found"),
    (b"BEGIN\n\n\x00", "Missing transaction"),
    (b"BEGIN\ntransaction:t\n\n\x00BEGIN\ntransaction:t\n\n\x00", "Bad transaction"),
    (b"ABORT\ntransaction:t\n\n\x00", "Bad transaction"),
    (b"SEND\ndestination:/queue/a\ntransaction:t\n\n\x00", "Bad transaction"),
]


@pytest.mark.parametrize(("data", "message"), CONNECTED)
def test_after_connect(port: int, bystander: stomp.Connection, data: bytes,
                       message: str) -> None:
    with RawStomp(port) as raw:
        raw.connect()
        raw.send(data)
        error = raw.closed_with_error()
        assert error.headers["message"] == message, error


def test_an_error_carries_the_receipt_it_was_asked_for(port: int,
                                                       bystander: stomp.Connection) -> None:
    with RawStomp(port) as raw:
        raw.connect()
        raw.send(b"SEND\nreceipt:r9\n\n\x00")
        assert raw.closed_with_error().headers["receipt-id"] == "r9"


def test_a_silent_client_is_dropped_at_the_login_deadline(bystander: stomp.Connection
                                                          ) -> None:
    port = free_port()
    with broker_in_thread(stomp_port=port, handshake_timeout=0.2), RawStomp(port) as raw:
        raw.sock.settimeout(5)
        assert raw.sock.recv(10) == b""


def test_a_client_that_misses_heartbeats_is_dropped(port: int,
                                                    bystander: stomp.Connection) -> None:
    with RawStomp(port) as raw:
        connected = raw.connect(**{"heart-beat": "1000,0"})
        assert connected.headers["heart-beat"] == "0,1000"
        raw.sock.settimeout(8)
        assert raw.sock.recv(10) == b""


@pytest.mark.parametrize("seed", range(8))
def test_random_bytes_after_connect(port: int, bystander: stomp.Connection,
                                    seed: int) -> None:
    rng = random.Random(seed)
    with RawStomp(port) as raw:
        raw.connect()
        raw.send(bytes(rng.randrange(256) for _ in range(2000)) + b"\n\n\x00" * 3
                 + b"SEND\ndestination:/queue/a\ncontent-length:1\n\nxy\x00")
        raw.closed_with_error()
