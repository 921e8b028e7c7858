"""Property tests: whatever bytes an MQTT client sends, its owner never fails
internally; it answers or closes that connection, and a healthy one keeps working."""

from __future__ import annotations

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from amqpbroker.broker.broker import Broker
from amqpbroker.protocol.amqp.connection import Limits
from amqpbroker.protocol.mqtt import codec
from amqpbroker.protocol.mqtt import packets as p
from amqpbroker.transport.mqtt import MqttConnection
from amqpbroker.transport.mqtt_node import MqttNode

FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=[HealthCheck.too_slow])
LIMITS = Limits(channel_max=2047, frame_max=131072, heartbeat=60, handshake_timeout=10.0,
                max_message_size=1 << 20, pre_auth_frame_max=4096, max_table_depth=64)

VALID = [codec.encode(packet, version) for version in (p.MQTT_311, p.MQTT_5) for packet in (
    p.Subscribe(1, [p.Subscription("a/#", 1), p.Subscription("$SYS/+", 2)]),
    p.Unsubscribe(2, ["a/#"]),
    p.Publish("a/b", b"x", 1, packet_id=3),
    p.Publish("a/c", b"y", 2, True, packet_id=4),
    p.Pubrel(4), p.Puback(1), p.Pubrec(2), p.Pubcomp(3), p.Pingreq(),
)]


class Failures:
    def __init__(self) -> None:
        self.count = 0


def owner(broker: Broker, node: MqttNode, failures: Failures, client_id: str,
          version: int) -> MqttConnection:
    conn = node(broker, LIMITS, peer="fuzz", now=0.0, wake=lambda: None,
                rearm=lambda: None, loopback=True, external_user=None)
    original = conn.internal_error

    def failed() -> None:
        failures.count += 1
        original()

    conn.internal_error = failed  # type: ignore[method-assign]
    conn.receive(codec.encode(p.Connect(version, client_id), version), 0.0)
    conn.take_output(0.0)
    return conn


@FUZZ
@given(st.sampled_from([p.MQTT_311, p.MQTT_5]),
       st.lists(st.one_of(st.sampled_from(VALID), st.binary(max_size=40)), max_size=12))
def test_no_internal_error(version: int, chunks: list[bytes]) -> None:
    broker, node, failures = Broker(), MqttNode(default_user="guest", default_pass="guest",
                                                default_vhost="/"), Failures()
    healthy = owner(broker, node, failures, "healthy", p.MQTT_311)
    healthy.receive(codec.encode(p.Subscribe(1, [p.Subscription("#", 0)]), p.MQTT_311), 0.0)
    fuzzed = owner(broker, node, failures, "fuzzed", version)
    for chunk in chunks:
        fuzzed.receive(chunk, 1.0)
        fuzzed.take_output(1.0)
    fuzzed.connection_lost("done")
    healthy.take_output(1.0)
    other = owner(broker, node, failures, "other", p.MQTT_311)
    other.receive(codec.encode(p.Publish("z", b"ok"), p.MQTT_311), 1.0)
    assert failures.count == 0
    assert not healthy.closed
    assert codec.encode(p.Publish("z", b"ok"), p.MQTT_311) in healthy.take_output(1.0)
