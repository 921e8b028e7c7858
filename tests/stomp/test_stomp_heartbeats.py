"""Heart-beats on a live connection: the server sends EOLs at half its interval, and a
client that sends them is kept."""

from __future__ import annotations

import time

from support.stomp_clients import StompConnector
from support.stompraw import RawStomp


def test_the_server_sends_eols_when_asked(stomp_port: int) -> None:
    with RawStomp(stomp_port) as raw:
        connected = raw.connect(**{"heart-beat": "0,1000"})
        assert connected.headers["heart-beat"] == "1000,0"
        deadline = time.monotonic() + 5
        while raw.parser.heartbeats < 2:
            assert time.monotonic() < deadline, "no heart-beats"
            raw.frames.extend(raw.parser.feed(raw.sock.recv(64)))
        assert raw.frames == []


def test_a_client_with_heartbeats_stays_connected(stomp_connect: StompConnector) -> None:
    connection, collector = stomp_connect(heartbeats=(1000, 1000))
    # Silent but for heart-beats for longer than the three intervals it would be given.
    assert not collector.disconnected.wait(3.5)
    connection.send("/queue/beat", "x", receipt="r")
    collector.wait_receipt("r")
