"""Flow control: a resource alarm stops reading STOMP publishers; a consumer that does not
read gets no more than its output buffer holds; STOMP connections in the management API."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from support.management import GUEST
from support.processes import free_port
from support.stomp_clients import StompConnector, connect
from support.stompraw import RawStomp

from amqpbroker.testing import EmbeddedBroker, broker_in_thread, wait_for
from amqpbroker.transport.stomp import StompClient


def stomp_clients(broker: EmbeddedBroker) -> list[StompClient]:
    return [c for c in list(broker.server.clients) if isinstance(c, StompClient)]


def test_an_alarm_holds_sends_until_it_clears(stomp_connect: StompConnector,
                                              broker: EmbeddedBroker) -> None:
    connection, collector = stomp_connect()
    connection.send("/queue/held", "first", receipt="r0")
    collector.wait_receipt("r0")
    broker.block_publishers()
    connection.send("/queue/held", "second", receipt="r1")
    wait_for(lambda: any(c.paused for c in stomp_clients(broker)), what="a paused publisher")
    assert broker.queue("held").ready == 1 and "r1" not in collector.receipts
    broker.unblock_publishers()
    collector.wait_receipt("r1")
    assert broker.queue("held").ready == 2


def test_a_consumer_that_does_not_read_is_not_flooded(stomp_connect: StompConnector,
                                                      broker: EmbeddedBroker,
                                                      stomp_port: int) -> None:
    connection, collector = stomp_connect()
    body = "x" * (1024 * 1024)
    for n in range(30):
        connection.send("/queue/big", body, receipt=f"r{n}")
    collector.wait_receipt("r29")
    with RawStomp(stomp_port) as raw:
        raw.connect()
        raw.send(b"SUBSCRIBE\ndestination:/queue/big\nid:s\n\n\x00")
        wait_for(lambda: any(c.was_full for c in stomp_clients(broker)),
                 what="a full output buffer")
        assert broker.queue("big").ready > 0
        for _ in range(30):
            assert raw.frame().command == "MESSAGE"
    wait_for(lambda: broker.queue("big").depth == 0, what="every message delivered")


@pytest.fixture
def managed() -> Iterator[tuple[EmbeddedBroker, httpx.Client, int]]:
    port, api = free_port(), free_port()
    with broker_in_thread(stomp_port=port, management_port=api) as broker, httpx.Client(
            base_url=f"http://127.0.0.1:{api}", auth=GUEST, timeout=10) as client:
        yield broker, client, port


def test_stomp_connections_in_the_management_api(
        managed: tuple[EmbeddedBroker, httpx.Client, int]) -> None:
    _broker, client, port = managed
    connection, collector = connect(port, version="1.1")
    connection.subscribe("/queue/seen", id="s", receipt="sub")
    collector.wait_receipt("sub")
    try:
        [shown] = client.get("/api/connections").json()
        assert shown["protocol"] == "STOMP 1.1"
        assert (shown["user"], shown["vhost"], shown["channels"]) == ("guest", "/", 1)
        assert shown["client_properties"] == {"product": "STOMP client"}
        [consumer] = client.get("/api/consumers").json()
        assert consumer["consumer_tag"] == "T_s"
        assert client.get("/api/channels").status_code == 200
    finally:
        connection.disconnect()
