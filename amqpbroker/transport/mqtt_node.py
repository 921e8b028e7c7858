"""What the MQTT connections of one broker share: which connection holds each client id,
the sessions that outlive their connections, retained messages, delayed wills.

`MqttNode` is also the `owner.OwnerFactory` of the MQTT listener: it builds one
`mqtt.MqttConnection` per accepted socket. Client ids and wills are in memory. The
session queues and their bindings are the broker's (durable for persistent sessions),
and a session's subscriptions are read back from those bindings after a restart (the
filter, its QoS and, for MQTT 5, the subscription options: see `Subscription.arguments`).
What else must outlive a restart is a runtime record of the broker's store, taken back
by `attach`: retained messages (kind `mqtt_retained`, header and body in base64) and the
QoS 2 packet ids in flight of persistent sessions (kind `mqtt_session`, written as they
change by `record_session`, deleted when the session ends). A session without a
connection ends when its expiry interval has passed (`schedule_expiry`).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from amqpbroker import errors
from amqpbroker.broker.broker import Broker
from amqpbroker.broker.message import Message
from amqpbroker.protocol.amqp.connection import Limits
from amqpbroker.protocol.mqtt import packets as p
from amqpbroker.protocol.mqtt.topics import matches, to_routing_key, valid_topic
from amqpbroker.store.base import Store
from amqpbroker.store.memory import MemoryStore
from amqpbroker.transport import bridge
from amqpbroker.transport.mqtt_messages import EXCHANGE, build_message

if TYPE_CHECKING:
    from amqpbroker.broker.queue import Queue
    from amqpbroker.broker.timers import Timer
    from amqpbroker.transport.mqtt import MqttConnection

log = logging.getLogger("amqpbroker.mqtt")

FILTER_ARG = "x-mqtt-filter"  # binding arguments: the MQTT filter and its granted QoS
QOS_ARG = "x-mqtt-qos"
OPTIONS_ARG = "x-mqtt-subscription-opts"  # MQTT 5: the options, as RabbitMQ 3.13's table
MAX_IDENTIFIER = 268_435_455  # the largest subscription identifier (a variable byte integer)
RETAINED_KIND = "mqtt_retained"  # the store's runtime records of retained messages
SESSION_KIND = "mqtt_session"  # ... and of the QoS 2 packet ids of persistent sessions
NEVER_EXPIRES = 0xFFFFFFFF  # an MQTT 5 session expiry interval that never ends


@dataclass(slots=True)
class Subscription:
    topic_filter: str
    qos: int
    routing_key: str
    no_local: bool = False
    identifier: int | None = None
    retain_as_published: bool = False
    retain_handling: int = 0
    options: bool = False  # the binding records the options (an MQTT 5 subscription)

    @property
    def arguments(self) -> dict[str, Any]:
        """The arguments of the subscription's binding: the filter and its QoS, and for
        MQTT 5 the subscription options in RabbitMQ's table (`id` only when set)."""
        arguments: dict[str, Any] = {FILTER_ARG: self.topic_filter, QOS_ARG: self.qos}
        if self.options:
            table: dict[str, Any] = {
                "qos": self.qos, "no-local": self.no_local,
                "retain-as-published": self.retain_as_published,
                "retain-handling": self.retain_handling}
            if self.identifier is not None:
                table["id"] = self.identifier
            arguments[OPTIONS_ARG] = table
        return arguments


@dataclass(slots=True)
class SessionState:
    """An MQTT session: subscriptions and the QoS 2 packet ids in flight."""

    expiry: int  # seconds the session outlives its connection (0: it ends with it)
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    inbound_qos2: set[int] = field(default_factory=set)  # PUBREC sent, PUBREL not in
    outbound_pubrel: set[int] = field(default_factory=set)  # PUBREL sent, PUBCOMP not in
    recorded: bool = False  # the store holds a record of its packet ids


@dataclass(frozen=True, slots=True)
class Retained:
    topic: str
    message: Message
    qos: int


def subscriptions_of(queue: Queue) -> dict[str, Subscription]:
    """The subscriptions recorded in a session queue's bindings to amq.topic, with their
    MQTT 5 options when the binding has them (option values that cannot be read are
    taken as not set)."""
    found = {}
    for exchange, routing_key, frozen in queue.inbound:
        if exchange.name != EXCHANGE:
            continue
        arguments = exchange.bindings.get((queue, routing_key, frozen), {})
        topic_filter, qos = arguments.get(FILTER_ARG), arguments.get(QOS_ARG)
        if isinstance(topic_filter, str) and isinstance(qos, int) and 0 <= qos <= 2:
            subscription = Subscription(topic_filter, qos, routing_key)
            table = arguments.get(OPTIONS_ARG)
            if isinstance(table, dict):
                _read_options(subscription, table)
            found[topic_filter] = subscription
    return found


def _read_options(subscription: Subscription, table: dict[str, Any]) -> None:
    identifier, handling = table.get("id"), table.get("retain-handling")
    subscription.options = True
    subscription.no_local = table.get("no-local") is True
    subscription.retain_as_published = table.get("retain-as-published") is True
    if type(identifier) is int and 1 <= identifier <= MAX_IDENTIFIER:
        subscription.identifier = identifier
    if type(handling) is int and 0 <= handling <= 2:
        subscription.retain_handling = handling


def _record_key(key: tuple[str, str]) -> str:
    """The store's key of a record: vhost and client id (or topic)."""
    return key[0] + "\x00" + key[1]


def _packet_ids(value: Any) -> set[int]:
    if not isinstance(value, list) or not all(
            type(packet_id) is int and 0 < packet_id <= 0xFFFF for packet_id in value):
        raise ValueError("not a list of packet identifiers")
    return set(value)


def _session_from_record(record: dict[str, Any]) -> tuple[tuple[str, str], SessionState]:
    vhost, client_id, expiry = record["vhost"], record["client_id"], record["expiry"]
    if not isinstance(vhost, str) or not isinstance(client_id, str) \
            or type(expiry) is not int or not 0 < expiry <= NEVER_EXPIRES:
        raise ValueError("not an MQTT session record")
    return (vhost, client_id), SessionState(
        expiry, inbound_qos2=_packet_ids(record["inbound_qos2"]),
        outbound_pubrel=_packet_ids(record["outbound_pubrel"]), recorded=True)


def _retained_from_record(record: dict[str, Any]) -> Retained:
    topic, qos = record["topic"], record["qos"]
    if not isinstance(record["vhost"], str) or not isinstance(topic, str) \
            or not valid_topic(topic) or qos not in (0, 1, 2):
        raise ValueError("not a retained message record")
    header = base64.b64decode(record["header"], validate=True)
    body = base64.b64decode(record["body"], validate=True)
    message = bridge.build_message(EXCHANGE, to_routing_key(topic), header, body)
    return Retained(topic, message, qos)


def _cancel(timers: dict[tuple[str, str], Timer], key: tuple[str, str]) -> None:
    """Cancel and forget the timer kept for `key`, if there is one."""
    timer = timers.pop(key, None)
    if timer is not None:
        timer.cancel()


class _NullSink:
    """The sink of the short session that publishes a will: it hears nothing."""

    def send_method(self, channel_id: int, method: Any) -> None: ...
    def notify(self, channel_id: int, method: Any) -> None: ...
    def send_content(self, channel_id: int, method: Any, message: Message) -> None: ...
    def send_deliver(self, channel_id: int, consumer: Any, delivery_tag: int,
                     redelivered: bool, message: Message) -> None: ...
    def send_confirm(self, channel_id: int, delivery_tag: int, multiple: bool,
                     ack: bool) -> None: ...
    def close_channel(self, channel_id: int, error: errors.AMQPError) -> None: ...
    def writable(self) -> bool:
        return True
    def internal_error(self) -> None: ...


class MqttNode:
    """The MQTT state of one broker, and the factory of its MQTT connections."""

    def __init__(self, *, default_user: str, default_pass: str, default_vhost: str) -> None:
        self.default_user = default_user
        self.default_pass = default_pass
        self.default_vhost = default_vhost
        self.clients: dict[tuple[str, str], MqttConnection] = {}
        self.sessions: dict[tuple[str, str], SessionState] = {}
        self.retained: dict[str, dict[str, Retained]] = {}
        self.wills: dict[tuple[str, str], Timer] = {}
        self.expiries: dict[tuple[str, str], Timer] = {}  # sessions without a connection
        self.store: Store = MemoryStore()

    def attach(self, broker: Broker) -> None:
        """Record retained messages and the QoS 2 packet ids of persistent sessions in the
        broker's store, and take back the ones it recovered (a record that cannot be read
        is skipped). A recovered session expires its expiry interval after the start
        unless its client comes back. Records of a vhost that is gone are deleted, and
        so is what the node keeps of a vhost when it is deleted (`vhost_deleted`)."""
        self.store = broker.store
        broker.vhost_deleted_listeners.append(self.vhost_deleted)
        for record in broker.frontend_records.pop(SESSION_KIND, []):
            try:
                key, state = _session_from_record(record)
            except (KeyError, TypeError, ValueError):
                log.warning("skipped an unreadable MQTT session record")
                continue
            if key[0] not in broker.vhosts:
                self.store.delete_runtime(SESSION_KIND, _record_key(key))
                continue
            self.sessions[key] = state
            self.schedule_expiry(broker, key, state.expiry)
        for record in broker.frontend_records.pop(RETAINED_KIND, []):
            try:
                retained = _retained_from_record(record)
            except (KeyError, TypeError, ValueError):
                log.warning("skipped an unreadable retained message record")
                continue
            vhost = record["vhost"]
            if vhost not in broker.vhosts:
                self.store.delete_runtime(RETAINED_KIND, _record_key((vhost, retained.topic)))
                continue
            self.retained.setdefault(vhost, {})[retained.topic] = retained

    def vhost_deleted(self, vhost: str) -> None:
        """A vhost was deleted (its connections closed first): its retained messages,
        sessions and delayed wills go, from the store too."""
        for topic in self.retained.pop(vhost, {}):
            self.store.delete_runtime(RETAINED_KIND, _record_key((vhost, topic)))
        for key in [key for key in self.sessions if key[0] == vhost]:
            self.end_session(key)
        for key in [key for key in self.wills if key[0] == vhost]:
            self.cancel_will(key)

    def __call__(self, broker: Broker, limits: Limits, *, peer: str, now: float,
                 wake: Callable[[], None], rearm: Callable[[], None], loopback: bool,
                 external_user: str | None) -> MqttConnection:
        from amqpbroker.transport.mqtt import MqttConnection

        return MqttConnection(self, broker, limits, peer=peer, now=now, wake=wake,
                              rearm=rearm, loopback=loopback)

    # --- sessions ------------------------------------------------------------------------

    def record_session(self, key: tuple[str, str], state: SessionState,
                       routed: set[int] | None = None) -> None:
        """Record the QoS 2 packet ids in flight of a persistent session: the inbound ones
        (with `routed`, those of publishes routed but not yet confirmed: a resent PUBLISH
        is not routed twice) and the PUBRELs sent. A session with none, or one that ends
        with its connection, has no record."""
        if not (state.expiry or state.recorded):
            return  # the usual case, a session that ends with its connection: nothing to do
        inbound = state.inbound_qos2 | routed if routed else state.inbound_qos2
        if state.expiry and (inbound or state.outbound_pubrel):
            self.store.put_runtime(SESSION_KIND, _record_key(key), {
                "vhost": key[0], "client_id": key[1], "expiry": state.expiry,
                "inbound_qos2": sorted(inbound),
                "outbound_pubrel": sorted(state.outbound_pubrel)})
            state.recorded = True
        elif state.recorded:
            self.store.delete_runtime(SESSION_KIND, _record_key(key))
            state.recorded = False

    def end_session(self, key: tuple[str, str]) -> None:
        """The session is over (a clean start, its expiry): its state and record go."""
        self.cancel_expiry(key)
        state = self.sessions.pop(key, None)
        if state is not None and state.recorded:
            self.store.delete_runtime(SESSION_KIND, _record_key(key))

    def schedule_expiry(self, broker: Broker, key: tuple[str, str], expiry: int) -> None:
        """End the session `expiry` seconds from now unless a client holds it then."""
        self.cancel_expiry(key)
        if not 0 < expiry < NEVER_EXPIRES:
            return
        timers = broker.timers

        def due(now: float) -> None:
            self.expiries.pop(key, None)
            if key not in self.clients:
                self.end_session(key)

        self.expiries[key] = timers.call_at(timers.now() + expiry, due)

    def cancel_expiry(self, key: tuple[str, str]) -> None:
        _cancel(self.expiries, key)

    # --- retained messages -------------------------------------------------------------

    def retain(self, vhost: str, topic: str, message: Message, qos: int) -> None:
        """Keep `message` as the topic's retained message (an empty one clears it)."""
        store = self.retained.setdefault(vhost, {})
        key = _record_key((vhost, topic))
        if message.body:
            store[topic] = Retained(topic, message, qos)
            self.store.put_runtime(RETAINED_KIND, key, {
                "vhost": vhost, "topic": topic, "qos": qos,
                "header": base64.b64encode(message.header).decode("ascii"),
                "body": base64.b64encode(message.body).decode("ascii")})
        elif store.pop(topic, None) is not None:
            self.store.delete_runtime(RETAINED_KIND, key)

    def retained_for(self, vhost: str, topic_filter: str) -> list[Retained]:
        store = self.retained.get(vhost)
        if not store:
            return []
        exact = store.get(topic_filter)
        if exact is not None:
            return [exact]
        return [r for topic, r in store.items() if matches(topic_filter, topic)]

    # --- wills ---------------------------------------------------------------------------

    def schedule_will(self, broker: Broker, key: tuple[str, str], username: str,
                      will: p.Will, delay: int) -> None:
        """Publish the will now, or after `delay` seconds unless the client comes back."""
        if delay <= 0:
            self.publish_will(broker, key[0], username, will)
            return
        timers = broker.timers

        def due(now: float) -> None:
            self.wills.pop(key, None)
            self.publish_will(broker, key[0], username, will)
            broker.dispatch_ready()

        self.cancel_will(key)
        self.wills[key] = timers.call_at(timers.now() + delay, due)

    def cancel_will(self, key: tuple[str, str]) -> None:
        _cancel(self.wills, key)

    def publish_will(self, broker: Broker, vhost: str, username: str, will: p.Will) -> None:
        """Publish a will through a session of its own, with the user's permissions."""
        try:
            session = broker.open_session(vhost, username, _NullSink(), cancel_notify=False)
        except errors.AMQPError:
            return
        if session is None:
            return
        try:
            props = {k: v for k, v in will.properties.items() if k != "will_delay_interval"}
            message = build_message(will.topic, will.payload, will.qos, False,
                                    will.retain, props)
            session.open_channel(1).publish((EXCHANGE, message.routing_key, False, False),
                                            message)
            if will.retain:
                self.retain(vhost, will.topic, message, will.qos)
        except errors.AMQPError as exc:
            log.warning("the will of %r on %r was refused: %s", username, will.topic, exc)
        finally:
            session.close()
