"""AMQPS: TLS 1.2+ with certificates made at test time (trustme), aio-pika and pika over
TLS, client-certificate verification and SASL EXTERNAL."""

from __future__ import annotations

import ssl
import warnings
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import pika
import pytest

from amqpbroker.testing import EmbeddedBroker, broker_in_thread


def _broker(files: dict[str, Path], **extra: object) -> Iterator[EmbeddedBroker]:
    with broker_in_thread(tls_cert=str(files["cert"]), tls_key=str(files["key"]),
                          tls_ca=str(files["ca"]), tls_port=0, **extra) as broker:
        yield broker


@pytest.fixture
def tls_broker(files: dict[str, Path]) -> Iterator[EmbeddedBroker]:
    yield from _broker(files)


@pytest.fixture
def verifying_broker(files: dict[str, Path]) -> Iterator[EmbeddedBroker]:
    yield from _broker(files, tls_verify_peer=True)


def client_context(files: dict[str, Path], certificate: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(files["ca"]))
    if certificate:
        context.load_cert_chain(str(files["client"]), str(files["client_key"]))
    return context


def pika_params(broker: EmbeddedBroker, context: ssl.SSLContext,
                credentials: pika.credentials.VALID_TYPES | None = None
                ) -> pika.ConnectionParameters:
    return pika.ConnectionParameters(
        "127.0.0.1", broker.server.tls_port, ssl_options=pika.SSLOptions(context, "localhost"),
        credentials=credentials or pika.PlainCredentials("guest", "guest"),
        connection_attempts=1)


def round_trip(connection: pika.BlockingConnection) -> bytes:
    channel = connection.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.basic_publish("", queue, b"over tls")
    _, _, body = channel.basic_get(queue, auto_ack=True)
    return body


def test_pika_over_tls(tls_broker: EmbeddedBroker, files: dict[str, Path]) -> None:
    connection = pika.BlockingConnection(pika_params(tls_broker, client_context(files)))
    assert round_trip(connection) == b"over tls"
    connection.close()


async def test_aiopika_over_tls(tls_broker: EmbeddedBroker, files: dict[str, Path]) -> None:
    connection = await aio_pika.connect(
        host="127.0.0.1", port=tls_broker.server.tls_port, ssl=True,
        ssl_context=client_context(files), login="guest", password="guest")
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True)
        await channel.default_exchange.publish(aio_pika.Message(b"aio tls"), queue.name)
        message = await queue.get(timeout=5)
        assert message is not None and message.body == b"aio tls"


def test_tls_below_1_2_is_refused(tls_broker: EmbeddedBroker, files: dict[str, Path]) -> None:
    context = client_context(files)
    context.set_ciphers("DEFAULT@SECLEVEL=0")  # let this client offer TLS 1.1 at all
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1_1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises((pika.exceptions.AMQPConnectionError, ssl.SSLError)):
        pika.BlockingConnection(pika_params(tls_broker, context))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    connection = pika.BlockingConnection(pika_params(tls_broker, context))
    assert round_trip(connection) == b"over tls"
    connection.close()


def test_plain_amqp_still_served(tls_broker: EmbeddedBroker) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(tls_broker.url))
    assert round_trip(connection) == b"over tls"
    connection.close()


def _mechanisms(broker: EmbeddedBroker, context: ssl.SSLContext) -> str:
    """The mechanisms a client sees in Connection.Start, read with a raw TLS socket."""
    import socket

    from pamqp import frame

    with socket.create_connection(("127.0.0.1", broker.server.tls_port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as sock:
        sock.sendall(b"AMQP\x00\x00\x09\x01")
        data = b""
        while True:
            data += sock.recv(65536)
            try:
                _, _, start = frame.unmarshal(data)
                break
            except Exception:  # incomplete frame: read more
                continue
    return start.mechanisms


def test_external_only_with_a_verified_client_certificate(
        verifying_broker: EmbeddedBroker, files: dict[str, Path]) -> None:
    assert "EXTERNAL" not in _mechanisms(verifying_broker, client_context(files))
    assert "EXTERNAL" in _mechanisms(verifying_broker, client_context(files, certificate=True))
    connection = pika.BlockingConnection(pika_params(
        verifying_broker, client_context(files, certificate=True),
        pika.credentials.ExternalCredentials()))
    assert round_trip(connection) == b"over tls"
    connection.close()


def test_external_refused_without_certificate(verifying_broker: EmbeddedBroker,
                                              files: dict[str, Path]) -> None:
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        pika.BlockingConnection(pika_params(
            verifying_broker, client_context(files), pika.credentials.ExternalCredentials()))


def test_required_client_certificate(files: dict[str, Path]) -> None:
    for broker in _broker(files, tls_verify_peer=True, tls_fail_if_no_peer_cert=True):
        with pytest.raises(pika.exceptions.AMQPConnectionError):
            pika.BlockingConnection(pika_params(broker, client_context(files)))
        connection = pika.BlockingConnection(
            pika_params(broker, client_context(files, certificate=True)))
        assert round_trip(connection) == b"over tls"
        connection.close()
