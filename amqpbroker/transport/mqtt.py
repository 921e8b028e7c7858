"""The owner of one MQTT connection: the MQTT frontend of `broker.frontend`.

`MqttConnection` drives the sans-IO `protocol.mqtt.Connection` and maps MQTT onto the
broker as RabbitMQ's MQTT plugin does: PUBLISH goes to `amq.topic` (topic `/` -> `.`,
`+` -> `*`), every subscription of a client is a binding of its session queue
`mqtt-subscription-<client id>qos1` to `amq.topic`, consumed on channel 1 with the
client's receive maximum as credit (10 for MQTT 3). So overlapping subscriptions
deliver a message once, at the highest QoS among the filters that match it. QoS 1 and
2 publishes go through channel 2 in confirm mode: PUBACK / PUBREC wait for the broker's
confirm. QoS 2 is exactly-once both ways (the packet ids in flight are kept in the
session, `mqtt_node.SessionState`). It is also the broker's `Sink` for the connection;
its output buffer and read pass are `owner.OwnerBase`'s, as for `bridge.ClientConnection`;
it does no IO.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from amqpbroker import errors
from amqpbroker.broker.broker import Broker
from amqpbroker.broker.channel import Channel
from amqpbroker.broker.consumer import Consumer, ReplyConsumer
from amqpbroker.broker.message import Message
from amqpbroker.protocol.amqp.connection import Limits
from amqpbroker.protocol.mqtt import codec
from amqpbroker.protocol.mqtt import packets as p
from amqpbroker.protocol.mqtt.commands import Failed
from amqpbroker.protocol.mqtt.connection import TOPIC_ALIAS_MAXIMUM, Connection
from amqpbroker.protocol.mqtt.topics import (
    SHARE_PREFIX,
    from_routing_key,
    matches,
    to_routing_key,
    valid_filter,
    valid_topic,
)
from amqpbroker.transport.mqtt_messages import EXCHANGE, build_message, outbound
from amqpbroker.transport.mqtt_node import (
    NEVER_EXPIRES,
    MqttNode,
    Retained,
    SessionState,
    Subscription,
    subscriptions_of,
)
from amqpbroker.transport.owner import OwnerBase

log = logging.getLogger("amqpbroker.mqtt")

PREFETCH = 10  # RabbitMQ's mqtt.prefetch: the credit of an MQTT 3 session
SUBSCRIPTION_TTL = 86400  # seconds an MQTT 3 persistent session outlives its connection
CONSUMER_TAG = "mqtt-subscriptions"
PUBLISH_CHANNEL, CONFIRM_CHANNEL = 1, 2
VERSION_NAMES = {p.MQTT_31: "MQTT 3.1", p.MQTT_311: "MQTT 3.1.1", p.MQTT_5: "MQTT 5.0"}


@dataclass
class MqttInfo:
    """What the management API shows of the connection (the fields it reads of an AMQP
    connection's protocol state)."""

    protocol_name: str = "MQTT 3.1.1"
    username: str = ""
    vhost: str = ""
    mechanism: str = "PLAIN"
    client_properties: dict[str, Any] = field(default_factory=dict)
    frame_max: int = 0
    channel_max: int = 1
    heartbeat: int = 0


class MqttConnection(OwnerBase):
    """One MQTT client: its protocol state, broker session, MQTT session and output.

    The keepalive is the client's: `tick` sends no heartbeat, it ends the connection."""

    wire: Connection

    def __init__(self, node: MqttNode, broker: Broker, limits: Limits, *, peer: str,
                 now: float, wake: Callable[[], None], rearm: Callable[[], None],
                 loopback: bool = True) -> None:
        super().__init__(broker, peer=peer, wake=wake, rearm=rearm, loopback=loopback)
        self.node = node
        self.max_packet = limits.max_message_size + 65536
        self.wire = Connection(max_packet_size=self.max_packet,
                               connect_timeout=limits.handshake_timeout, now=now)
        self.protocol = MqttInfo()  # what management reads
        self.version = p.MQTT_311
        self.key = ("", "")
        self.state = SessionState(0)
        self.will: p.Will | None = None
        self.queue = ""
        self.queue_ready = False
        self.consuming: bool | None = None  # None: no consumer; else: acks needed
        self.credit = PREFETCH
        self.only_qos = -1  # the QoS of the one subscription, -1 with more or none
        self.tagged = False  # some subscription has an identifier, no_local or RAP
        self.no_local = False
        self.recent: deque[Message] = deque(maxlen=256)  # published here, for no_local
        self.inflight: dict[int, tuple[int | None, int]] = {}  # packet id: (tag, qos)
        self.copies: dict[int, int] = {}  # delivery tag: copies sent and not yet acked
        self.last_packet_id = 0
        self.confirms: deque[tuple[int, int, int]] = deque()  # (seq, packet id, qos)
        self.publish_seq = 0
        self.pending_qos2: set[int] = set()
        self.auto_acks: list[int] = []
        self.topics: dict[str, bytes] = {}
        self.blocked = False
        self.pending: tuple[p.Publish, Iterator[p.Packet | Failed]] | None = None

    # --- state the transport reads -----------------------------------------------------

    @property
    def paused(self) -> bool:
        return self.pending is not None

    # --- input -----------------------------------------------------------------------

    def receive(self, data: bytes, now: float) -> None:
        """One read pass, as `OwnerBase.receive`, ending with `_end_of_pass`: deliver
        what became ready, then ack what went out at QoS 0."""
        state = self.wire.state
        self.recv_oct += len(data)
        try:
            self._run(self.wire.receive_data(data, now))
            self._end_of_pass()
        except Exception:
            self.internal_error()
        if self.out:
            self.wake()
        if self.wire.state != state:
            self.rearm()

    def _end_of_pass(self) -> None:
        if self.session is not None:
            self.session.end_of_pass()
            self._settle_auto_acks()

    def _run(self, packets: Iterator[p.Packet | Failed]) -> None:
        for packet in packets:
            if type(packet) is p.Publish:
                if self.blocked:
                    self.pending = (packet, packets)
                    return
                self._publish(packet)
            else:
                _HANDLERS[type(packet)](self, packet)

    # --- CONNECT -----------------------------------------------------------------------

    def _connect(self, packet: p.Connect) -> None:
        self.version = version = packet.protocol_level
        node = self.node
        username, password = packet.username, packet.password
        if username is None and password is None:
            username, password = node.default_user, node.default_pass.encode()
        if username is None or password is None:
            self._refuse(p.V3_BAD_CREDENTIALS, p.BAD_USER_NAME_OR_PASSWORD)
            return
        vhost = node.default_vhost
        if ":" in username:
            vhost, username = username.rsplit(":", 1)
        try:
            secret = password.decode("utf-8")
        except UnicodeDecodeError:
            secret = None
        if secret is None or not self.broker.authenticate(username, secret, self.loopback):
            log.warning("%s: MQTT authentication failed for user %r", self.peer, username)
            self._refuse(p.V3_BAD_CREDENTIALS, p.BAD_USER_NAME_OR_PASSWORD)
            return
        client_id = packet.client_id
        assigned = not client_id
        if assigned:
            if version != p.MQTT_5 and not packet.clean_start:
                self._refuse(p.V3_IDENTIFIER_REJECTED, p.CLIENT_IDENTIFIER_NOT_VALID)
                return
            client_id = "amqpbroker-" + secrets.token_hex(8)
        will = packet.will
        if will is not None and not valid_topic(will.topic):
            self._refuse(p.V3_IDENTIFIER_REJECTED, p.TOPIC_NAME_INVALID)
            return
        try:
            session = self.broker.open_session(vhost, username, self, cancel_notify=True)
        except errors.AMQPConnectionError:
            self._refuse(p.V3_NOT_AUTHORIZED, p.NOT_AUTHORIZED)
            return
        if session is None:
            self._refuse(p.V3_BAD_CREDENTIALS, p.BAD_USER_NAME_OR_PASSWORD)
            return
        self.session = session
        session.open_channel(PUBLISH_CHANNEL)
        self.key = key = (vhost, client_id)
        previous = node.clients.get(key)
        if previous is not None:
            previous.taken_over()
        node.clients[key] = self
        node.cancel_will(key)
        node.cancel_expiry(key)
        properties = packet.properties
        if version == p.MQTT_5:
            expiry = properties.get("session_expiry_interval", 0)
            self.credit = properties.get("receive_maximum", 65535)
            self.wire.client_max_packet = properties.get("maximum_packet_size",
                                                         self.wire.client_max_packet)
            self.wire.client_alias_max = properties.get("topic_alias_maximum", 0)
        else:
            expiry = 0 if packet.clean_start else SUBSCRIPTION_TTL
        self.queue = f"mqtt-subscription-{client_id}qos1"
        existing = session.vhost.queues.get(self.queue)
        if packet.clean_start:
            node.end_session(key)
            if existing is not None:
                self._channel.delete_queue(self.queue)
                existing = None
        state = node.sessions.get(key)
        if state is not None and existing is None and state.subscriptions:  # queue expired
            node.end_session(key)
            state = None
        resumed = state is not None
        if state is None:
            state = SessionState(expiry)
        if existing is not None and not state.subscriptions:  # e.g. after a restart
            state.subscriptions = subscriptions_of(existing)
        if state.expiry != expiry:
            state.expiry = expiry
            node.record_session(key, state)
        node.sessions[key] = self.state = state
        self.queue_ready = existing is not None
        self.will = will
        self.protocol = MqttInfo(VERSION_NAMES[version], username, vhost,
                                 client_properties={"product": "MQTT client",
                                                    "client_id": client_id},
                                 heartbeat=packet.keepalive)
        ack_properties: p.Properties = {}
        if version == p.MQTT_5:
            ack_properties = {"topic_alias_maximum": TOPIC_ALIAS_MAXIMUM,
                              "maximum_packet_size": self.max_packet,
                              "shared_subscription_available": 0}
            if assigned:
                ack_properties["assigned_client_identifier"] = client_id
        self._append(self.wire.accept(resumed or existing is not None, ack_properties,
                                      keepalive=packet.keepalive))
        log.info("%s: MQTT connection opened (client %r, user %r, vhost %r)", self.peer,
                 client_id, username, vhost)
        for packet_id in sorted(state.outbound_pubrel):
            self._send(p.Pubrel(packet_id))
        if existing is not None:
            self._update_consumer()

    def _refuse(self, v3_code: int, v5_code: int) -> None:
        self._append(self.wire.refuse(v3_code, v5_code))
        self.will = None
        self._release()

    @property
    def _channel(self) -> Channel:
        assert self.session is not None
        return self.session.channels[PUBLISH_CHANNEL]

    # --- PUBLISH from the client ---------------------------------------------------------

    def _publish(self, packet: p.Publish) -> None:
        self.publisher = True
        qos = packet.qos
        packet_id = packet.packet_id
        if qos == 2 and (packet_id in self.state.inbound_qos2 or packet_id in self.pending_qos2):
            if packet_id in self.state.inbound_qos2:
                self._send(p.Pubrec(packet_id))
            return
        message = build_message(packet.topic, packet.payload, qos, packet.dup,
                                packet.retain, packet.properties)
        session = self.session
        assert session is not None
        try:
            if qos:
                channel = session.channels.get(CONFIRM_CHANNEL)
                if channel is None:
                    channel = session.open_channel(CONFIRM_CHANNEL)
                    channel.select_confirms()
                channel.publish((EXCHANGE, message.routing_key, False, False), message)
                self.publish_seq += 1
                self.confirms.append((self.publish_seq, packet_id, qos))
                if qos == 2:
                    self.pending_qos2.add(packet_id)
                    self._record_session()
            else:
                session.channels[PUBLISH_CHANNEL].publish(
                    (EXCHANGE, message.routing_key, False, False), message)
        except errors.AMQPError as exc:
            self._publish_refused(packet, exc)
            return
        if self.no_local:
            self.recent.append(message)
        if packet.retain:
            self.node.retain(self.key[0], packet.topic, message, qos)

    def _publish_refused(self, packet: p.Publish, exc: errors.AMQPError) -> None:
        code = p.NOT_AUTHORIZED if exc.reply_code == errors.ACCESS_REFUSED \
            else p.UNSPECIFIED_ERROR
        if self.version == p.MQTT_5 and packet.qos:
            self._send((p.Puback if packet.qos == 1 else p.Pubrec)(packet.packet_id, code))
            return
        log.warning("%s: MQTT publish to %r refused: %s", self.peer, packet.topic,
                    exc.reply_text)
        self._close(code, exc.reply_text)

    def send_confirm(self, channel_id: int, delivery_tag: int, multiple: bool,
                     ack: bool) -> None:
        confirms = self.confirms
        v5 = self.version == p.MQTT_5
        while confirms and confirms[0][0] <= delivery_tag:
            _seq, packet_id, qos = confirms.popleft()
            code = 0 if ack or not v5 else p.UNSPECIFIED_ERROR
            if qos == 1:
                self._send(p.Puback(packet_id, code))
                continue
            self.pending_qos2.discard(packet_id)
            if ack:
                self.state.inbound_qos2.add(packet_id)
            else:
                self._record_session()
            self._send(p.Pubrec(packet_id, code))

    def _record_session(self) -> None:
        """Keep the store's record of this session's QoS 2 packet ids up to date."""
        self.node.record_session(self.key, self.state, self.pending_qos2)

    def _pubrel(self, packet: p.Pubrel) -> None:
        if packet.packet_id in self.state.inbound_qos2:
            self.state.inbound_qos2.discard(packet.packet_id)
            self._record_session()
            self._send(p.Pubcomp(packet.packet_id))
        else:
            self._send(p.Pubcomp(packet.packet_id, p.PACKET_IDENTIFIER_NOT_FOUND))

    # --- acknowledgements of deliveries --------------------------------------------------

    def _puback(self, packet: p.Puback) -> None:
        entry = self.inflight.pop(packet.packet_id, None)
        if entry is not None and entry[0] is not None:
            self._ack(entry[0])

    def _pubrec(self, packet: p.Pubrec) -> None:
        entry = self.inflight.pop(packet.packet_id, None)
        if entry is None:
            self._send(p.Pubrel(packet.packet_id, p.PACKET_IDENTIFIER_NOT_FOUND))
            return
        if entry[0] is not None:
            self._ack(entry[0])
        if packet.reason_code >= 0x80:
            return
        self.state.outbound_pubrel.add(packet.packet_id)
        self._record_session()
        self._send(p.Pubrel(packet.packet_id))

    def _pubcomp(self, packet: p.Pubcomp) -> None:
        pubrel = self.state.outbound_pubrel
        if packet.packet_id in pubrel:
            pubrel.discard(packet.packet_id)
            self._record_session()

    def _ack(self, tag: int) -> None:
        copies = self.copies.get(tag)
        if copies is not None:  # one of several copies: ack once all are acked
            if copies > 1:
                self.copies[tag] = copies - 1
                return
            del self.copies[tag]
        # unknown: the delivery already went back to its queue
        with contextlib.suppress(errors.ChannelError):
            self._channel.ack(tag, False)

    def _settle_auto_acks(self) -> None:
        """Ack the deliveries sent at QoS 0 (or dropped) by a consumer that acks."""
        if not self.auto_acks or self.session is None:
            return
        tags, self.auto_acks = self.auto_acks, []
        channel = self.session.channels.get(PUBLISH_CHANNEL)
        if channel is not None:
            for tag in tags:
                if tag in channel.unacked:
                    channel.ack(tag, False)

    # --- SUBSCRIBE and UNSUBSCRIBE -------------------------------------------------------

    def _subscribe(self, packet: p.Subscribe) -> None:
        v5 = self.version == p.MQTT_5
        codes = []
        granted: list[tuple[p.Subscription, bool]] = []
        identifier = (packet.properties.get("subscription_identifier") or [None])[0]
        subscriptions = self.state.subscriptions
        for sub in packet.subscriptions:
            topic_filter = sub.topic_filter
            if topic_filter.startswith(SHARE_PREFIX):
                codes.append(p.SHARED_SUBSCRIPTIONS_NOT_SUPPORTED if v5 else 0x80)
                continue
            if not valid_filter(topic_filter):
                codes.append(p.TOPIC_FILTER_INVALID if v5 else 0x80)
                continue
            new = Subscription(topic_filter, sub.qos, to_routing_key(topic_filter),
                               sub.no_local, identifier, sub.retain_as_published,
                               sub.retain_handling, options=v5)
            old = subscriptions.get(topic_filter)
            try:
                self._ensure_queue()
                channel = self._channel
                if old is not None and old.arguments != new.arguments:
                    channel.unbind_queue(self.queue, EXCHANGE, old.routing_key, old.arguments)
                channel.bind_queue(self.queue, EXCHANGE, new.routing_key, new.arguments)
            except errors.AMQPError as exc:
                log.warning("%s: MQTT subscription to %r refused: %s", self.peer,
                            topic_filter, exc.reply_text)
                codes.append(p.NOT_AUTHORIZED if v5 else 0x80)
                continue
            subscriptions[topic_filter] = new
            codes.append(sub.qos)
            granted.append((sub, old is None))
        self._send(p.Suback(packet.packet_id, codes))
        self._update_consumer()
        for sub, is_new in granted:
            if sub.retain_handling == 0 or (sub.retain_handling == 1 and is_new):
                for retained in self.node.retained_for(self.key[0], sub.topic_filter):
                    self._send_retained(retained, sub.qos, identifier)

    def _ensure_queue(self) -> None:
        if self.queue_ready:
            return
        expiry = self.state.expiry
        channel = self._channel
        if expiry == 0:
            channel.declare_queue(self.queue, exclusive=True)
        else:
            arguments = {"x-expires": expiry * 1000} if expiry < NEVER_EXPIRES else {}
            channel.declare_queue(self.queue, durable=True, arguments=arguments)
        self.queue_ready = True

    def _unsubscribe(self, packet: p.Unsubscribe) -> None:
        codes = []
        for topic_filter in packet.topic_filters:
            old = self.state.subscriptions.pop(topic_filter, None)
            if old is None:
                codes.append(p.NO_SUBSCRIPTION_EXISTED)
                continue
            try:
                self._channel.unbind_queue(self.queue, EXCHANGE, old.routing_key,
                                           old.arguments)
                codes.append(p.SUCCESS)
            except errors.AMQPError:
                codes.append(p.NOT_AUTHORIZED)
        self._update_consumer()
        self._send(p.Unsuback(packet.packet_id, codes if self.version == p.MQTT_5 else []))

    def _update_consumer(self) -> None:
        """Consume the session queue as the subscriptions need: with acks when one has
        QoS 1 or 2, without when all have QoS 0, not at all without subscriptions."""
        subscriptions = self.state.subscriptions
        values = list(subscriptions.values())
        self.only_qos = values[0].qos if len(values) == 1 else -1
        self.no_local = any(s.no_local for s in values)
        self.tagged = self.no_local or any(s.identifier is not None or s.retain_as_published
                                           for s in values)
        if self.tagged:
            self.only_qos = -1
        mode = any(s.qos for s in values) if values else None
        if mode == self.consuming or not self.queue_ready:
            return
        channel = self._channel
        if self.consuming is not None:
            channel.cancel(CONSUMER_TAG)
        self.consuming = mode
        if mode is not None:
            channel.set_credit(min(self.credit, 65535))
            channel.consume(self.queue, tag=CONSUMER_TAG, no_ack=not mode)

    # --- other packets -------------------------------------------------------------------

    def _pingreq(self, packet: p.Pingreq) -> None:
        self._append(b"\xd0\x00")

    def _disconnect(self, packet: p.Disconnect) -> None:
        expiry = packet.properties.get("session_expiry_interval")
        if expiry is not None and expiry != self.state.expiry:
            if not self.state.expiry:  # MQTT 5 3.14.2.2.2
                self._close(p.PROTOCOL_ERROR, "session expiry set at DISCONNECT after 0")
                return
            self.state.expiry = expiry
            self._record_session()
            vhost = self.session.vhost if self.session is not None else None
            queue = vhost.queues.get(self.queue) if vhost is not None else None
            if expiry and queue is not None and self.queue_ready:
                queue.vhost.set_queue_expires(
                    queue, expiry * 1000 if expiry < NEVER_EXPIRES else None)
        if packet.reason_code != p.DISCONNECT_WITH_WILL:
            self.will = None
        self._end()

    def _failed(self, command: Failed) -> None:
        log.warning("%s: MQTT protocol error: %s", self.peer, command.text)
        if command.data:
            self._append(command.data)
        self._end()

    # --- deliveries to the client (broker Sink) ------------------------------------------

    def send_deliver(self, channel_id: int, consumer: Consumer | ReplyConsumer,
                     delivery_tag: int, redelivered: bool, message: Message) -> None:
        tag = None if not isinstance(consumer, Consumer) or consumer.no_ack else delivery_tag
        routing_key = message.routing_key
        qos = self.only_qos
        if qos >= 0 and routing_key[:1] != "$":
            sent = self._deliver(message, qos, None, False, redelivered, tag)
        else:
            copies = self._matching(routing_key, message)
            sent = 0
            for qos, identifier, retain in copies:
                sent += self._deliver(message, qos, identifier, retain, redelivered, tag)
            if sent > 1 and tag is not None:
                self.copies[tag] = sent
        if not sent and tag is not None:
            self.auto_acks.append(tag)

    def _deliver(self, message: Message, qos: int, identifier: int | None,
                 retain_as_published: bool, redelivered: bool, tag: int | None) -> int:
        """Send one PUBLISH of a delivery; 1 if it waits for the client's ack, else 0
        (QoS 0, or dropped as larger than the client takes)."""
        routing_key = message.routing_key
        dup = retain = False
        info = None
        if qos or retain_as_published:
            info = outbound(message)
            retain = retain_as_published and info.retain
        if qos:
            assert info is not None
            if info.qos < qos:
                qos = info.qos
            dup = redelivered or info.dup
        topic = self.topics.get(routing_key)
        if topic is None:
            if len(self.topics) > 1024:
                self.topics.clear()
            topic = self.topics[routing_key] = from_routing_key(routing_key).encode("utf-8")
        packet_id = self._packet_id() if qos else 0
        if self.version == p.MQTT_5:
            data = self._v5_publish(message, info, topic, identifier, qos, retain, dup,
                                    packet_id)
            if data is None:  # too large for the client: dropped (MQTT 5 3.1.2.25)
                return 0
        else:
            data = codec.encode_publish(topic, message.body, qos, retain, dup, packet_id,
                                        None)
        self._append(data)
        if not qos:
            return 0
        self.inflight[packet_id] = (tag, qos)
        return 0 if tag is None else 1

    def _matching(self, routing_key: str, message: Message
                  ) -> list[tuple[int, int | None, bool]]:
        """(QoS, subscription identifier, retain-as-published) of each copy to send: one
        per distinct identifier among the subscriptions matching the topic, at the
        highest QoS among them (none: e.g. a `$` topic and wildcards)."""
        topic = from_routing_key(routing_key)
        copies: dict[int | None, tuple[int, int | None, bool]] = {}
        for sub in self.state.subscriptions.values():
            if matches(sub.topic_filter, topic):
                if sub.no_local and message in self.recent:
                    continue
                identifier = sub.identifier
                found = copies.get(identifier)
                if found is None:
                    copies[identifier] = (sub.qos, identifier, sub.retain_as_published)
                else:
                    copies[identifier] = (max(found[0], sub.qos), identifier,
                                          found[2] or sub.retain_as_published)
        return list(copies.values())

    def _v5_publish(self, message: Message, info: Any, topic: bytes,
                    identifier: int | None, qos: int, retain: bool, dup: bool,
                    packet_id: int) -> bytes | None:
        """An MQTT 5 PUBLISH with its properties and, if the client allows, a topic
        alias; None when it is larger than the client's maximum packet size."""
        props = (info or outbound(message)).properties
        if identifier is not None:
            props = dict(props, subscription_identifier=[identifier])
        limit = self.wire.client_max_packet
        if self.wire.client_alias_max:
            alias, new = self.wire.outbound_alias(topic.decode("utf-8"), commit=False)
            if alias:
                data = codec.encode_publish(topic if new else b"", message.body, qos,
                                            retain, dup, packet_id, codec.encode_properties(
                                                dict(props, topic_alias=alias)))
                if len(data) > limit:
                    return None
                if new:
                    self.wire.outbound_alias(topic.decode("utf-8"))
                return data
        encoded = codec.encode_properties(props) if props else codec.EMPTY_PROPERTIES
        data = codec.encode_publish(topic, message.body, qos, retain, dup, packet_id, encoded)
        return None if len(data) > limit else data

    def _send_retained(self, retained: Retained, subscribed_qos: int,
                       identifier: int | None) -> None:
        qos = min(subscribed_qos, retained.qos)
        packet_id = self._packet_id() if qos else 0
        topic = retained.topic.encode("utf-8")
        message = retained.message
        if self.version == p.MQTT_5:
            props = outbound(message).properties
            if identifier is not None:
                props = dict(props, subscription_identifier=[identifier])
            data = codec.encode_publish(topic, message.body, qos, True, False, packet_id,
                                        codec.encode_properties(props))
            if len(data) > self.wire.client_max_packet:
                return  # too large for the client: dropped
        else:
            data = codec.encode_publish(topic, message.body, qos, True, False, packet_id,
                                        None)
        if qos:
            self.inflight[packet_id] = (None, qos)
        self._append(data)

    def _packet_id(self) -> int:
        busy = self.inflight
        pubrel = self.state.outbound_pubrel
        packet_id = self.last_packet_id
        for _ in range(65535):
            packet_id = packet_id % 65535 + 1
            if packet_id not in busy and packet_id not in pubrel:
                self.last_packet_id = packet_id
                return packet_id
        raise RuntimeError("no MQTT packet identifier is free")

    def send_method(self, channel_id: int, method: Any) -> None:
        """Replies to the broker methods this owner calls: nothing to tell the client."""

    def send_content(self, channel_id: int, method: Any, message: Message) -> None:
        """Basic.Return and Get-Ok: not used by MQTT."""

    def notify(self, channel_id: int, method: Any) -> None:
        """The session queue went away (deleted by an operator): the subscriptions are
        gone with it; a later SUBSCRIBE declares it again."""
        self.consuming = None
        self.queue_ready = False
        self.state.subscriptions.clear()
        self._update_consumer()

    def close_channel(self, channel_id: int, error: errors.AMQPError) -> None:
        self._close(p.UNSPECIFIED_ERROR, error.reply_text)
        self.wake()

    # --- output ------------------------------------------------------------------------

    def _send(self, packet: p.Packet) -> None:
        self._append(codec.encode(packet, self.version))

    def take_output(self, now: float) -> bytes:
        """Ack what was sent at QoS 0 since the last pass, then everything buffered."""
        if self.auto_acks:
            try:
                self._settle_auto_acks()
            except Exception:
                self.internal_error()
        return OwnerBase.take_output(self, now)

    # --- time, alarms, the end -----------------------------------------------------------

    def tick(self, now: float) -> bool:
        expired = self.wire.tick(now)
        if expired is None:
            return True
        if self.version == p.MQTT_5 and self.session is not None:
            self._append(codec.encode(p.Disconnect(p.KEEP_ALIVE_TIMEOUT), p.MQTT_5))
        log.info("%s: MQTT connection closed: %s", self.peer, expired.text)
        self._end()
        return False

    def set_blocked(self, blocked: bool) -> None:
        """A resource alarm: the next PUBLISH is held back and reading stops."""
        self.blocked = blocked

    def tell_blocked(self) -> None:
        """MQTT has no way to tell a client it is blocked."""

    def resume(self, now: float) -> None:
        pending, self.pending = self.pending, None
        try:
            if pending is not None:
                packet, rest = pending
                self._publish(packet)
                self._run(rest)
            self._end_of_pass()
        except Exception:
            self.internal_error()
        self.wake()

    def taken_over(self) -> None:
        """Another connection took the client id: close without the will."""
        self.will = None
        self._close(p.SESSION_TAKEN_OVER, "client id taken over")
        self.wake()

    def _close(self, code: int, text: str) -> None:
        data = self.wire.close(code, text)
        if data:
            self._append(data)
        self._end()

    def _end(self) -> None:
        """The connection ends: publish the will (if still due), release everything."""
        will, self.will = self.will, None
        if will is not None and self.session is not None:
            delay = will.properties.get("will_delay_interval", 0)
            self.node.schedule_will(self.broker, self.key, self.session.username, will,
                                    min(delay, self.state.expiry))
        self._release()

    def _release(self) -> None:
        session, self.session = self.session, None
        if session is None:
            return
        node, key = self.node, self.key
        # a publish routed but not yet confirmed is taken: a resent one is not routed
        self.state.inbound_qos2 |= self.pending_qos2
        self.pending_qos2.clear()
        if node.clients.get(key) is self:
            del node.clients[key]
            if self.state.expiry == 0:
                node.end_session(key)
                if self.queue_ready and self.queue in session.vhost.queues:
                    with contextlib.suppress(errors.AMQPError):
                        session.channels[PUBLISH_CHANNEL].delete_queue(self.queue)
            else:
                node.schedule_expiry(self.broker, key, self.state.expiry)
        self.inflight.clear()
        self.copies.clear()
        session.close()

    def connection_lost(self, reason: str) -> None:
        self.wire.connection_lost(reason)
        self._end()

    def internal_error(self) -> None:
        log.exception("%s: internal error, closing the MQTT connection", self.peer)
        self._close(p.IMPLEMENTATION_SPECIFIC_ERROR, "internal error")
        self.wake()

    def shutdown_on_error(self, reason: str) -> None:
        self._close(p.UNSPECIFIED_ERROR, reason)
        self.wake()

    def shutdown(self, reason: str, code: int = errors.CONNECTION_FORCED) -> None:
        self.will = None
        self._close(p.SERVER_SHUTTING_DOWN, reason)
        self.wake()


_HANDLERS: dict[type, Callable[[MqttConnection, Any], None]] = {
    p.Connect: MqttConnection._connect,
    p.Puback: MqttConnection._puback,
    p.Pubrec: MqttConnection._pubrec,
    p.Pubrel: MqttConnection._pubrel,
    p.Pubcomp: MqttConnection._pubcomp,
    p.Subscribe: MqttConnection._subscribe,
    p.Unsubscribe: MqttConnection._unsubscribe,
    p.Pingreq: MqttConnection._pingreq,
    p.Disconnect: MqttConnection._disconnect,
    Failed: MqttConnection._failed,
}
