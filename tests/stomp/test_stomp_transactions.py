"""Receipts and BEGIN/COMMIT/ABORT with transactional SEND and ACK."""

from __future__ import annotations

from support.stomp_clients import StompConnector

from amqpbroker.testing import EmbeddedBroker


def test_every_frame_that_asks_gets_a_receipt(stomp_connect: StompConnector) -> None:
    connection, collector = stomp_connect()
    connection.subscribe("/queue/q", id="s", ack="client", receipt="sub")
    connection.begin("t1", receipt="begin")
    connection.abort("t1", receipt="abort")
    connection.unsubscribe("s", receipt="unsub")
    for receipt in ("sub", "begin", "abort", "unsub"):
        collector.wait_receipt(receipt)
    connection.disconnect(receipt="bye")
    assert "bye" in collector.receipts
    assert collector.disconnected.wait(5)


def test_commit_publishes_what_the_transaction_sent(stomp_connect: StompConnector,
                                                    broker: EmbeddedBroker) -> None:
    connection, collector = stomp_connect()
    connection.send("/queue/q", "declare", receipt="r0")
    collector.wait_receipt("r0")
    transaction = connection.begin()
    connection.send("/queue/q", "one", transaction=transaction)
    connection.send("/queue/q", "two", transaction=transaction, receipt="held")
    collector.wait_receipt("held")
    assert broker.queue("q").ready == 1
    connection.commit(transaction, receipt="committed")
    collector.wait_receipt("committed")
    assert broker.queue("q").ready == 3
    aborted = connection.begin()
    connection.send("/queue/q", "never", transaction=aborted)
    connection.abort(aborted, receipt="aborted")
    collector.wait_receipt("aborted")
    assert broker.queue("q").ready == 3


def test_acks_in_a_transaction_wait_for_the_commit(stomp_connect: StompConnector,
                                                   broker: EmbeddedBroker) -> None:
    connection, collector = stomp_connect()
    for n in range(2):
        connection.send("/queue/q", str(n), receipt=f"r{n}")
    collector.wait_receipt("r1")
    connection.subscribe("/queue/q", id="s", ack="client-individual")
    first, second = collector.wait_messages(2)
    transaction = connection.begin()
    connection.ack(first.headers["ack"], transaction=transaction)
    connection.nack(second.headers["ack"], transaction=transaction, requeue="false",
                    receipt="held")
    collector.wait_receipt("held")
    assert broker.queue("q").unacked == 2
    connection.commit(transaction, receipt="committed")
    collector.wait_receipt("committed")
    assert broker.queue("q").depth == 0


def test_an_unknown_transaction_is_an_error(stomp_connect: StompConnector) -> None:
    connection, collector = stomp_connect()
    connection.commit("nope")
    error = collector.wait_error()
    assert error.headers["message"] == "Bad transaction"
    assert error.body == 'Invalid transaction identifier: "nope"\n'
    assert collector.disconnected.wait(5)
