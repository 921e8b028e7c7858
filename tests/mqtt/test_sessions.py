"""MQTT sessions: client ids, takeover, clean and persistent sessions (also across a
restart), keepalive, wills, retained messages, QoS 2, overlapping subscriptions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from support.mqtt_clients import V5, V311, Client
from support.processes import free_port

from amqpbroker.testing import EmbeddedBroker, broker_in_thread, wait_for

pytestmark = pytest.mark.timeout(60)
Open = Callable[..., Client]


def test_empty_client_id(mqtt_client: Open) -> None:
    assert mqtt_client("", clean=True).connected()[1] == 0
    _present, code, props = mqtt_client("", version=V5).connected()
    assert code == 0 and props.AssignedClientIdentifier


def test_bad_password_and_unknown_vhost(mqtt_client: Open) -> None:
    # paho reports the 3.1.1 return code 4 as its MQTT 5 equivalent, 0x86
    assert mqtt_client("x", password="wrong").connected()[1] == 0x86
    assert mqtt_client("x", username="nope:guest").connected()[1] == 0x86
    assert mqtt_client("x", username="/:guest").connected()[1] == 0
    assert mqtt_client("x", version=V5, password="wrong").connected()[1] == 0x86


def test_takeover_closes_the_first_without_will(mqtt_client: Open) -> None:
    watcher = mqtt_client("watcher")
    watcher.connected()
    watcher.subscribe("will/#")
    first = mqtt_client("same", will=("will/same", b"gone", 0, False))
    first.connected()
    second = mqtt_client("same")
    assert second.connected()[1] == 0
    assert first.disconnected.wait(10)
    watcher.no_message()


def test_will_on_drop_not_on_disconnect(mqtt_client: Open) -> None:
    watcher = mqtt_client("watcher")
    watcher.connected()
    watcher.subscribe("will/#", 1)
    polite = mqtt_client("polite", will=("will/polite", b"x", 1, False))
    polite.connected()
    polite.close()
    rude = mqtt_client("rude", will=("will/rude", b"bye", 1, True))
    rude.connected()
    rude.drop()
    message = watcher.message()
    assert (message.topic, message.payload, message.qos) == ("will/rude", b"bye", 1)
    late = mqtt_client("late")
    late.connected()
    late.subscribe("will/rude", 1)
    assert late.message().retain  # the will was retained


def test_will_on_keepalive_expiry(mqtt_client: Open) -> None:
    watcher = mqtt_client("watcher")
    watcher.connected()
    watcher.subscribe("will/#")
    silent = mqtt_client("silent", keepalive=1, will=("will/silent", b"timeout", 0, False))
    silent.connected()
    silent.paho.loop_stop()  # stops pinging; the broker drops it after 1.5 s
    assert watcher.message().payload == b"timeout"


def test_will_delay(mqtt_broker: EmbeddedBroker, mqtt_client: Open) -> None:
    watcher = mqtt_client("watcher")
    watcher.connected()
    watcher.subscribe("will/#")
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 60
    will_props = Properties(PacketTypes.WILLMESSAGE)
    will_props.WillDelayInterval = 30
    delayed = mqtt_client("delayed", version=V5, properties=props,
                          will=("will/delayed", b"later", 0, False), will_properties=will_props)
    delayed.connected()
    delayed.drop()
    watcher.no_message()
    mqtt_broker.clock.advance(31)
    assert watcher.message().payload == b"later"


def test_retained(mqtt_client: Open) -> None:
    pub = mqtt_client("pub")
    pub.connected()
    pub.publish("r/a", b"A", 1, retain=True)
    pub.publish("r/b", b"B", 0, retain=True)
    pub.publish("r/c", b"C", 1, retain=True)
    pub.publish("r/c", b"", 1, retain=True)  # clears r/c
    sub = mqtt_client("sub")
    sub.connected()
    sub.subscribe("r/+", 1)
    got = sorted((m.topic, m.payload, m.qos, m.retain) for m in (sub.message(), sub.message()))
    assert got == [("r/a", b"A", 1, True), ("r/b", b"B", 0, True)]
    sub.no_message()


@pytest.mark.parametrize("version", [V311, V5], ids=["3.1.1", "5"])
def test_qos2_exactly_once(mqtt_client: Open, version: int) -> None:
    sub = mqtt_client("sub2", version=version)
    sub.connected()
    sub.subscribe("e/1", 2)
    pub = mqtt_client("pub2", version=version)
    pub.connected()
    for n in range(5):
        pub.publish("e/1", str(n), 2)
    got = [sub.message() for _ in range(5)]
    assert [(m.payload, m.qos) for m in got] == [(str(n).encode(), 2) for n in range(5)]
    sub.no_message()


def test_overlapping_subscriptions_deliver_once_at_highest_qos(mqtt_client: Open) -> None:
    sub = mqtt_client("over")
    sub.connected()
    sub.subscribe("o/#", 0)
    sub.subscribe("o/+/x", 1)
    pub = mqtt_client("pub")
    pub.connected()
    pub.publish("o/a/x", b"both", 1)
    pub.publish("o/a/y", b"one", 1)
    first, second = sub.message(), sub.message()
    assert [(first.payload, first.qos), (second.payload, second.qos)] == [(b"both", 1),
                                                                          (b"one", 0)]
    sub.no_message()


def test_dollar_topics_not_matched_by_wildcards(mqtt_client: Open) -> None:
    sub = mqtt_client("dollar")
    sub.connected()
    sub.subscribe("#")
    sub.subscribe("+/info")
    exact = mqtt_client("exact")
    exact.connected()
    exact.subscribe("$SYS/info")
    pub = mqtt_client("pub")
    pub.connected()
    pub.publish("$SYS/info", b"sys", 1)
    pub.publish("plain/info", b"plain", 1)
    assert exact.message().payload == b"sys"
    assert sub.message().payload == b"plain"
    sub.no_message()


def test_unsubscribe(mqtt_client: Open) -> None:
    sub = mqtt_client("unsub")
    sub.connected()
    sub.subscribe("u/1", 1)
    info = sub.paho.unsubscribe("u/1")
    assert info[0] == 0
    pub = mqtt_client("pub")
    pub.connected()
    wait_for(lambda: not sub.paho._out_packet, what="the UNSUBSCRIBE sent")
    pub.publish("u/1", b"x", 1)
    sub.no_message(0.5)


def test_clean_session_drops_the_persistent_one(mqtt_broker: EmbeddedBroker,
                                                mqtt_client: Open) -> None:
    keep = mqtt_client("k", clean=False)
    keep.connected()
    keep.subscribe("k/1", 1)
    keep.close()
    assert "mqtt-subscription-kqos1" in mqtt_broker.server.broker.vhosts["/"].queues
    clean = mqtt_client("k", clean=True)
    assert clean.connected()[0] is False
    clean.close()
    wait_for(lambda: "mqtt-subscription-kqos1" not in
             mqtt_broker.server.broker.vhosts["/"].queues, what="the session queue gone")


def test_persistent_session_survives_a_restart(tmp_path: Path) -> None:
    with broker_in_thread(mqtt_port=free_port(), data_dir=str(tmp_path)) as broker:
        port = broker.server.frontend_ports["mqtt"]
        sub = Client(port, "durable", clean=False)
        sub.connected()
        sub.subscribe("d/#", 1)
        sub.close()
        pub = Client(port, "pub")
        pub.connected()
        pub.publish("d/x", b"kept", 1)
        pub.close()
        broker.restart()
        again = Client(broker.server.frontend_ports["mqtt"], "durable", clean=False)
        try:
            assert again.connected()[0] is True
            message = again.message()
            assert (message.topic, message.payload, message.qos) == ("d/x", b"kept", 1)
            pub = Client(port, "pub")
            pub.connected()
            pub.publish("d/y", b"after", 1)  # the subscription is still there
            assert again.message().payload == b"after"
            pub.close()
        finally:
            again.close()


def test_mqtt5_properties_round_trip(mqtt_client: Open) -> None:
    sub = mqtt_client("p5", version=V5)
    sub.connected()
    sub.subscribe("p/1", 1)
    pub = mqtt_client("pp5", version=V5)
    pub.connected()
    props = Properties(PacketTypes.PUBLISH)
    props.ContentType = "text/plain"
    props.ResponseTopic = "reply/here"
    props.CorrelationData = b"corr-1"
    props.MessageExpiryInterval = 60
    props.UserProperty = [("k", "v")]
    pub.publish("p/1", b"body", 1, properties=props)
    got = sub.message().properties
    assert got.ContentType == "text/plain" and got.ResponseTopic == "reply/here"
    assert got.CorrelationData == b"corr-1" and got.MessageExpiryInterval == 60
    assert ("k", "v") in got.UserProperty
