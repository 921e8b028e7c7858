"""stomp.py clients on an embedded broker: a listener that collects what arrives, and
connecting with RabbitMQ's conventions (vhost `/`, guest/guest)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import stomp
from stomp.utils import Frame

from amqpbroker.testing import wait_for

TIMEOUT = 10.0


class Collector(stomp.ConnectionListener):
    """Everything a connection receives: MESSAGE, RECEIPT and ERROR frames, and whether
    it was disconnected."""

    def __init__(self) -> None:
        self.messages: list[Frame] = []
        self.receipts: list[str] = []
        self.errors: list[Frame] = []
        self.disconnected = threading.Event()
        self.lock = threading.Lock()

    def on_message(self, frame: Frame) -> None:
        with self.lock:
            self.messages.append(frame)

    def on_receipt(self, frame: Frame) -> None:
        with self.lock:
            self.receipts.append(frame.headers["receipt-id"])

    def on_error(self, frame: Frame) -> None:
        with self.lock:
            self.errors.append(frame)

    def on_disconnected(self) -> None:
        self.disconnected.set()

    def wait_messages(self, count: int, timeout: float = TIMEOUT) -> list[Frame]:
        wait_for(lambda: len(self.messages) >= count, timeout, f"{count} MESSAGE frames")
        with self.lock:
            return list(self.messages)

    def wait_receipt(self, receipt: str, timeout: float = TIMEOUT) -> None:
        wait_for(lambda: receipt in self.receipts, timeout, f"RECEIPT {receipt}")

    def wait_error(self, timeout: float = TIMEOUT) -> Frame:
        wait_for(lambda: self.errors, timeout, "an ERROR frame")
        return self.errors[0]


StompConnector = Callable[..., tuple[stomp.Connection, "Collector"]]


def connect(port: int, *, version: str = "1.2", login: str = "guest", passcode: str = "guest",
            vhost: str = "/", **options: Any) -> tuple[stomp.Connection, Collector]:
    """A connected stomp.py connection (`version` 1.0, 1.1 or 1.2) and its collector."""
    factory = {"1.0": stomp.Connection10, "1.1": stomp.Connection11,
               "1.2": stomp.Connection12}[version]
    if version != "1.0":  # 1.0 sends no host header: the default vhost
        options["vhost"] = vhost
    connection = factory([("127.0.0.1", port)], timeout=TIMEOUT, reconnect_attempts_max=1,
                         **options)
    collector = Collector()
    connection.set_listener("collector", collector)
    connection.connect(login, passcode, wait=True)
    return connection, collector


@contextmanager
def connections(port: int) -> Iterator[StompConnector]:
    """Opens stomp.py connections (`connect`'s options) to the STOMP listener on `port`;
    disconnects them at the end."""
    opened: list[stomp.Connection] = []

    def open_connection(**options: Any) -> tuple[stomp.Connection, Collector]:
        connection, collector = connect(port, **options)
        opened.append(connection)
        return connection, collector

    try:
        yield open_connection
    finally:
        for connection in opened:
            if connection.is_connected():
                connection.disconnect()
