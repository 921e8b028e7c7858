"""The broker side of one client connection: its vhost, user, channels and exclusive
queues; the `SessionModel` of `broker.frontend`. Created once the connection is open;
closed when it goes, whatever the reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from amqpbroker import errors
from amqpbroker.broker.access import Permission, TopicPermission
from amqpbroker.broker.channel import Channel
from amqpbroker.broker.queue import ENTRY_OVERHEAD

if TYPE_CHECKING:
    from amqpbroker.broker.frontend import Sink
    from amqpbroker.broker.queue import Queue
    from amqpbroker.broker.vhost import VirtualHost


class Session:
    """Everything the broker holds for one connection."""

    def __init__(self, vhost: VirtualHost, username: str, sink: Sink, *,
                 cancel_notify: bool, consumer_timeout: float | None = None,
                 permission: Permission | None = None) -> None:
        self.vhost = vhost
        self.consumer_timeout = consumer_timeout
        self.permission = permission or Permission()
        self._allowed: set[tuple[str, str, str]] = set()
        self.topic_permissions: dict[str, TopicPermission] = {}
        self.username = username
        self.sink = sink
        self.cancel_notify = cancel_notify
        self.channels: dict[int, Channel] = {}
        self.exclusive_queues: set[Queue] = set()
        self.dirty_channels: set[Channel] = set()

    def check(self, kind: str, resource: str, name: str) -> None:
        """403 unless the user has `kind` (configure, write, read) permission on the
        resource (`queue` or `exchange`); answers are remembered per session."""
        key = (kind, resource, name)
        if key in self._allowed:
            return
        checked = "amq.default" if resource == "exchange" and not name else name
        if not self.permission.allows(kind, checked):
            raise errors.access_refused(resource, checked, self.vhost.name, self.username)
        self._allowed.add(key)

    def check_topic(self, kind: str, exchange_name: str, routing_key: str) -> None:
        """403 unless the user's topic permission (`write` for a publish, `read` for a
        bind or unbind) on a topic exchange allows the routing key; no topic permission
        for the exchange allows every key. Exchanges of other types are not checked."""
        topic = self.topic_permissions.get(exchange_name)
        if topic is None:
            return
        exchange = self.vhost.exchanges.get(exchange_name)
        if exchange is None or exchange.type != "topic":
            return
        if not topic.allows(kind, routing_key,
                            {"username": self.username, "vhost": self.vhost.name}):
            raise errors.topic_access_refused(routing_key, exchange_name, self.vhost.name,
                                              self.username)

    def unacked_memory(self) -> int:
        """Bytes held by this session's delivered, unacknowledged messages."""
        return sum(len(record.entry.message.body) + ENTRY_OVERHEAD
                   for channel in self.channels.values() for record in channel.unacked.values())

    def open_channel(self, channel_id: int) -> Channel:
        channel = Channel(self, channel_id, self.sink)
        self.channels[channel_id] = channel
        self.vhost.churn.channel_created += 1
        return channel

    def close_channel(self, channel_id: int) -> None:
        channel = self.channels.pop(channel_id, None)
        if channel is not None:
            self.dirty_channels.discard(channel)
            self.vhost.churn.channel_closed += 1
            channel.close()

    def end_of_pass(self) -> None:
        """After each read pass: deliver to the consumers of the queues that became
        ready, then send the coalesced publisher confirms."""
        ready = self.vhost.ready
        if ready:
            ready.dispatch()
        if self.dirty_channels:
            for channel in self.dirty_channels:
                channel.flush_confirms()
            self.dirty_channels.clear()

    def resume(self) -> None:
        """The connection can take output again: let its consumers' queues deliver."""
        for channel in list(self.channels.values()):
            for consumer in list(channel.consumers.values()):
                consumer.queue.dispatch()

    def close(self) -> None:
        """The connection is gone: close every channel, delete its exclusive queues."""
        for channel_id in list(self.channels):
            self.close_channel(channel_id)
        for queue in list(self.exclusive_queues):
            self.vhost.remove_queue(queue)
        self.exclusive_queues.clear()
        self.vhost.ready.dispatch()  # what closing dead-lettered into other queues
