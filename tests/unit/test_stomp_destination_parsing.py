"""STOMP destinations as RabbitMQ reads them, MESSAGE destinations, subscription queue
names."""

from __future__ import annotations

import pytest

from amqpbroker.transport import stomp_destinations as d


@pytest.mark.parametrize(("text", "kind", "name", "key", "target"), [
    ("/queue/a", d.QUEUE, "a", "", ("", "a")),
    ("plain", d.QUEUE, "plain", "", ("", "plain")),
    ("/queue/a%2Fb", d.QUEUE, "a/b", "", ("", "a/b")),
    ("/amq/queue/a", d.AMQ_QUEUE, "a", "", ("", "a")),
    ("/topic/a.b", d.TOPIC, "amq.topic", "a.b", ("amq.topic", "a.b")),
    ("/exchange/x", d.EXCHANGE, "x", "", ("x", "")),
    ("/exchange/x/k.*", d.EXCHANGE, "x", "k.*", ("x", "k.*")),
    ("/temp-queue/t", d.TEMP_QUEUE, "t", "", ("", "t")),
    ("/reply-queue/amq.gen-1/x", d.REPLY_QUEUE, "amq.gen-1/x", "", ("", "amq.gen-1/x")),
])
def test_parse(text: str, kind: str, name: str, key: str, target: tuple[str, str]) -> None:
    destination = d.parse(text)
    assert (destination.kind, destination.name, destination.key) == (kind, name, key)
    assert destination.publish_target == target


@pytest.mark.parametrize(("text", "message"), [
    ("/bogus/x", "Unknown destination"), ("", "Unknown destination"),
    ("/queue/", "Invalid destination"), ("/queue/a/b", "Invalid destination"),
    ("/topic/", "Invalid destination"), ("/exchange/", "Invalid destination"),
    ("/exchange/x/a/b", "Invalid destination")])
def test_invalid(text: str, message: str) -> None:
    with pytest.raises(d.DestinationError) as raised:
        d.parse(text)
    assert raised.value.message == message


def test_message_destinations_and_reply_to() -> None:
    assert d.of_message("", "a/b%") == "/queue/a%2Fb%25"
    assert d.of_message("amq.topic", "k") == "/topic/k"
    assert d.of_message("x", "k") == "/exchange/x/k"
    assert d.reply_to_header("q") == "/reply-queue/q"
    assert d.reply_to_header("/topic/t") == "/topic/t"


def test_subscription_queue_names() -> None:
    durable = d.subscription_queue("news", "sub-1")
    assert durable == d.subscription_queue("news", "sub-1")
    assert durable.startswith("stomp-subscription-") and len(durable) == 41
    assert durable != d.subscription_queue("news", "sub-2")
    assert d.subscription_queue("news", None) != d.subscription_queue("news", None)
    assert d.subscription_queue("\u2603", "") != d.subscription_queue("", "")
