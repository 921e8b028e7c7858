"""MQTT PUBLISH <-> broker `Message`, built once at the edge.

Inbound, a PUBLISH becomes a message for `amq.topic` shaped as RabbitMQ's MQTT plugin
shapes it: delivery_mode 1 for QoS 0 and 2 above, headers `x-mqtt-publish-qos` (a
byte) and `x-mqtt-dup`, and `x-mqtt-retain` (true) on a retained PUBLISH only, for
subscriptions that ask for retain-as-published. MQTT 5 properties map onto AMQP ones
(content type, response topic -> reply_to as a routing key, correlation data ->
correlation_id, message expiry -> expiration in ms, user properties -> headers). Without
MQTT 5 properties the content header is put together from precomputed bytes (the hot
path).

Outbound, what a delivery needs from an AMQP content header (the publish QoS, the DUP
and RETAIN flags, the MQTT 5 properties) is read once per distinct header and cached; a
header that cannot be read, or headers of any type or shape, give defaults, never an
error.
"""

from __future__ import annotations

import contextlib
import struct
from typing import Any

from pamqp.commands import Basic

from amqpbroker.broker import properties
from amqpbroker.broker.message import Message
from amqpbroker.protocol.mqtt import codec
from amqpbroker.protocol.mqtt.topics import from_routing_key, to_routing_key

EXCHANGE = "amq.topic"
QOS_HEADER = "x-mqtt-publish-qos"
DUP_HEADER = "x-mqtt-dup"
RETAIN_HEADER = "x-mqtt-retain"
_OWN_HEADERS = (QOS_HEADER, DUP_HEADER, RETAIN_HEADER, "x-mqtt-payload-format",
                "x-correlation-id")
AMQP_QOS = 1  # the publish QoS of a message with no x-mqtt-publish-qos header

_PREFIX = struct.Struct(">HHQH")
_FLAG_HEADERS = properties.FLAGS["headers"]
_FLAG_DELIVERY_MODE = properties.FLAGS["delivery_mode"]


def _fixed_tail(qos: int, dup: bool, retain: bool) -> bytes:
    table = (b"\x12" + QOS_HEADER.encode() + b"b" + bytes((qos,))
             + b"\x0a" + DUP_HEADER.encode() + b"t" + bytes((dup,)))
    if retain:
        table += b"\x0d" + RETAIN_HEADER.encode() + b"t\x01"
    return len(table).to_bytes(4, "big") + table + bytes((2 if qos else 1,))


# (qos, dup, retain) -> the headers table and delivery mode, and the headers' span, of a
# PUBLISH with no properties
_TAILS = {(qos, dup, retain): _fixed_tail(qos, dup, retain)
          for qos in range(3) for dup in (False, True) for retain in (False, True)}
_SPANS = {key: (_PREFIX.size, _PREFIX.size + len(tail) - 1) for key, tail in _TAILS.items()}
_FLAGS = _FLAG_HEADERS | _FLAG_DELIVERY_MODE


def build_message(topic: str, payload: bytes, qos: int, dup: bool, retain: bool,
                  mqtt_properties: dict[str, Any]) -> Message:
    """The broker message of a PUBLISH (its topic already checked)."""
    routing_key = to_routing_key(topic)
    if not mqtt_properties or mqtt_properties.keys() <= {"topic_alias"}:
        key = (qos, dup, retain)
        header = _PREFIX.pack(60, 0, len(payload), _FLAGS) + _TAILS[key]
        return Message(EXCHANGE, routing_key, header, payload, 2 if qos else 1, -1, None,
                       _SPANS[key], None, properties.decode_headers)
    return properties.build(EXCHANGE, routing_key,
                            _v5_properties(qos, dup, retain, mqtt_properties), payload)


def _v5_properties(qos: int, dup: bool, retain: bool, mqtt: dict[str, Any]
                   ) -> Basic.Properties:
    headers: dict[str, Any] = {QOS_HEADER: qos, DUP_HEADER: dup}  # small ints: type b
    if retain:
        headers[RETAIN_HEADER] = True
    for name, value in mqtt.get("user_property", ()):
        headers[name] = value
    if "payload_format_indicator" in mqtt:
        headers["x-mqtt-payload-format"] = mqtt["payload_format_indicator"]
    props = Basic.Properties(headers=headers, delivery_mode=2 if qos else 1)
    content_type = mqtt.get("content_type")
    if content_type and len(content_type.encode()) <= 255:
        props.content_type = content_type
    response_topic = mqtt.get("response_topic")
    if response_topic and len(response_topic.encode()) <= 255:
        props.reply_to = to_routing_key(response_topic)
    correlation = mqtt.get("correlation_data")
    if correlation is not None:
        try:
            text = correlation.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None and len(correlation) <= 255:
            props.correlation_id = text
        else:
            headers["x-correlation-id"] = correlation
    expiry = mqtt.get("message_expiry_interval")
    if expiry is not None:
        props.expiration = str(expiry * 1000)
    return props


# --------------------------------------------------------------------------- outbound


class Outbound:
    """What a delivery to MQTT takes from a message's content header."""

    __slots__ = ("dup", "properties", "qos", "retain")

    def __init__(self, qos: int, dup: bool, retain: bool, props: dict[str, Any]) -> None:
        self.qos = qos
        self.dup = dup
        self.retain = retain  # published with RETAIN (for retain-as-published)
        self.properties = props


_DEFAULT = Outbound(AMQP_QOS, False, False, {})
_CACHE: dict[bytes, Outbound] = {}
_CACHE_MAX = 4096


def outbound(message: Message) -> Outbound:
    """The publish QoS, DUP and RETAIN flags and MQTT 5 properties of a message (cached per content
    header, whatever its body size)."""
    key = message.header[12:]
    found = _CACHE.get(key)
    if found is not None:
        return found
    try:
        found = _read(message)
    except Exception:
        found = _DEFAULT
    if len(_CACHE) >= _CACHE_MAX:
        _CACHE.clear()
    _CACHE[key] = found
    return found


def _text(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("utf-8", "replace")
    return str(value).replace("\x00", "")


def _read(message: Message) -> Outbound:
    props = properties.decode(message)
    headers = props.headers if isinstance(props.headers, dict) else {}
    qos = headers.get(QOS_HEADER, AMQP_QOS)
    if isinstance(qos, bool) or not isinstance(qos, int) or not 0 <= qos <= 2:
        qos = AMQP_QOS
    dup = headers.get(DUP_HEADER) is True
    mqtt: dict[str, Any] = {}
    pairs = [(_text(k), _text(v)) for k, v in headers.items() if k not in _OWN_HEADERS]
    if props.content_type:
        mqtt["content_type"] = _text(props.content_type)
    if props.reply_to:
        mqtt["response_topic"] = from_routing_key(_text(props.reply_to))
    correlation = headers.get("x-correlation-id")
    if isinstance(correlation, bytes | bytearray):
        mqtt["correlation_data"] = bytes(correlation)
    elif props.correlation_id:
        mqtt["correlation_data"] = props.correlation_id.encode("utf-8")
    if props.expiration:
        with contextlib.suppress(ValueError):
            mqtt["message_expiry_interval"] = min(max(int(props.expiration) // 1000, 0),
                                                  2**32 - 1)
    payload_format = headers.get("x-mqtt-payload-format")
    if payload_format in (0, 1) and not isinstance(payload_format, bool):
        mqtt["payload_format_indicator"] = payload_format
    if pairs:
        mqtt["user_property"] = pairs
    codec.encode_properties(mqtt)  # anything unencodable is found here, not per delivery
    return Outbound(qos, dup, headers.get(RETAIN_HEADER) is True, mqtt)

