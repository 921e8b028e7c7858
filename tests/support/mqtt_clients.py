"""paho-mqtt clients for the MQTT tests: connect and wait for the CONNACK, collect
messages and acknowledgements in queues, every wait with a deadline."""

from __future__ import annotations

import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from amqpbroker.protocol.mqtt import codec, packets

TIMEOUT = 10.0
V311, V5 = paho.MQTTv311, paho.MQTTv5


class Client:
    """One paho client on its own network thread."""

    def __init__(self, port: int, client_id: str = "", *, version: int = V311,
                 clean: bool = True, username: str | None = "guest",
                 password: str | None = "guest", keepalive: int = 60,
                 will: tuple[str, bytes, int, bool] | None = None,
                 properties: Properties | None = None,
                 will_properties: Properties | None = None) -> None:
        self.version = version
        kwargs: dict[str, Any] = {"client_id": client_id, "protocol": version}
        if version != V5:
            kwargs["clean_session"] = clean
        self.paho = paho.Client(CallbackAPIVersion.VERSION2, **kwargs)
        if username is not None:
            self.paho.username_pw_set(username, password)
        if will is not None:
            self.paho.will_set(*will, properties=will_properties)
        self.messages: queue.Queue[paho.MQTTMessage] = queue.Queue()
        self.connack: queue.Queue[tuple[bool, Any, Any]] = queue.Queue()
        self.subacks: queue.Queue[list[Any]] = queue.Queue()
        self.disconnected = threading.Event()
        self.disconnect_reason: Any = None
        self.paho.on_connect = self._on_connect
        self.paho.on_message = lambda _c, _u, message: self.messages.put(message)
        self.paho.on_subscribe = lambda _c, _u, _mid, codes, _props: self.subacks.put(codes)
        self.paho.on_disconnect = self._on_disconnect
        self.paho.connect_async("127.0.0.1", port, keepalive,
                                clean_start=clean if version == V5 else
                                paho.MQTT_CLEAN_START_FIRST_ONLY,
                                properties=properties)
        self.paho.reconnect_delay_set(60, 120)  # no quiet reconnects behind a test's back
        self.paho.loop_start()

    def _on_connect(self, _client: Any, _userdata: Any, flags: Any, reason: ReasonCode,
                    properties: Any) -> None:
        self.connack.put((flags.session_present, reason, properties))

    def _on_disconnect(self, _client: Any, _userdata: Any, _flags: Any, reason: Any,
                       _properties: Any) -> None:
        self.disconnect_reason = reason
        self.disconnected.set()

    def connected(self) -> tuple[bool, Any, Any]:
        """(session present, reason code, CONNACK properties)."""
        return self.connack.get(timeout=TIMEOUT)

    def subscribe(self, topic: str, qos: int = 0, **options: Any) -> list[Any]:
        if self.version == V5:
            from paho.mqtt.subscribeoptions import SubscribeOptions

            properties = options.pop("properties", None)
            self.paho.subscribe(topic, options=SubscribeOptions(qos=qos, **options),
                                properties=properties)
        else:
            self.paho.subscribe(topic, qos)
        return self.subacks.get(timeout=TIMEOUT)

    def publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False,
                properties: Properties | None = None) -> None:
        """Publish and, for QoS 1 and 2, wait until the broker acknowledged it."""
        info = self.paho.publish(topic, payload, qos, retain, properties=properties)
        if qos:
            info.wait_for_publish(TIMEOUT)
            assert info.is_published()

    def message(self, timeout: float = TIMEOUT) -> paho.MQTTMessage:
        return self.messages.get(timeout=timeout)

    def no_message(self, timeout: float = 0.3) -> None:
        try:
            message = self.messages.get(timeout=timeout)
        except queue.Empty:
            return
        raise AssertionError(f"unexpected message on {message.topic}: {message.payload!r}")

    def close(self) -> None:
        if not self.disconnected.is_set():
            self.paho.disconnect()
            self.disconnected.wait(TIMEOUT)
        self.paho.loop_stop()

    def drop(self) -> None:
        """Close the socket without DISCONNECT (the will is due)."""
        sock = self.paho.socket()
        if sock is not None:
            sock.close()
        self.disconnected.wait(TIMEOUT)
        self.paho.loop_stop()


@contextmanager
def clients(port: int) -> Iterator[Callable[..., Client]]:
    """Opens paho clients to the MQTT listener on `port`; closes them at the end."""
    opened: list[Client] = []

    def open_client(*args: Any, **kwargs: Any) -> Client:
        client = Client(port, *args, **kwargs)
        opened.append(client)
        return client

    try:
        yield open_client
    finally:
        for client in opened:
            client.close()


class RawMqtt:
    """A raw socket speaking MQTT through the broker's own codec, for what paho would
    never send."""

    def __init__(self, port: int, version: int = V311) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.version = version
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_packet(self, packet: packets.Packet) -> None:
        self.send(codec.encode(packet, self.version))

    def connect(self, client_id: str = "raw", **fields: Any) -> packets.Packet:
        self.send_packet(packets.Connect(self.version, client_id, **fields))
        return self.packet()

    def packet(self) -> packets.Packet:
        """The next packet from the broker; raises EOFError when it closed instead."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            found = codec.split(self.buffer, 0, 2**28)
            if found is not None:
                first, start, end = found
                data, self.buffer = self.buffer[:end], self.buffer[end:]
                return codec.decode(first, data, start, end, self.version)
            self.sock.settimeout(max(deadline - time.monotonic(), 0.01))
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("the broker closed the connection")
            self.buffer += chunk

    def no_packet(self, timeout: float = 0.3) -> None:
        """Nothing arrives for `timeout` seconds."""
        assert not self.buffer, f"unexpected bytes from the broker: {self.buffer[:64]!r}"
        self.sock.settimeout(timeout)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected bytes from the broker: {chunk[:64]!r}")

    def closed(self) -> bool:
        """True once the broker closed the connection (packets before that are skipped)."""
        try:
            while True:
                self.packet()
        except (EOFError, ConnectionResetError):
            return True

    def close(self) -> None:
        self.sock.close()
