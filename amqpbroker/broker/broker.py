"""The broker root: users and virtual hosts, and sessions opened against them; the
`BrokerModel` of `broker.frontend`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from amqpbroker.broker.access import Access
from amqpbroker.broker.buffers import Paging
from amqpbroker.broker.frontend import Sink
from amqpbroker.broker.session import Session
from amqpbroker.broker.stats import Churn, MessageStats
from amqpbroker.broker.timers import Timers
from amqpbroker.broker.vhost import VirtualHost
from amqpbroker.store.base import Store
from amqpbroker.store.memory import MemoryStore


class Broker:
    """All state of one running broker, in memory."""

    def __init__(self, *, default_user: str = "guest", default_pass: str = "guest",
                 default_vhost: str = "/", timers: Timers | None = None,
                 consumer_timeout: float | None = None, store: Store | None = None,
                 loopback_users: tuple[str, ...] = ("guest",),
                 paging: Paging | None = None) -> None:
        self.paging = paging
        self.timers = timers or Timers()
        self.store: Store = store or MemoryStore()
        self.consumer_timeout = consumer_timeout
        self.access = Access(loopback_users, self.store)
        self.access.add_user(default_user, default_pass, tags=["administrator"], record=False)
        self.access.set_permission(default_user, default_vhost, record=False)
        self.alarms: set[str] = set()
        self.alarm_listeners: list[Callable[[bool], None]] = []
        # called with a vhost's name once it is deleted: the frontends drop what they
        # keep of it (e.g. MQTT retained messages and sessions)
        self.vhost_deleted_listeners: list[Callable[[str], None]] = []
        self.churn = Churn()
        self.deleted_vhost_stats = MessageStats()  # what deleted vhosts had counted
        # Start writing what the store recorded (the transport's committer sets it): a
        # read pass calls it before delivering, so the fsync overlaps the deliveries.
        self.write_soon: Callable[[], None] = lambda: None
        # runtime records of the frontends (e.g. MQTT retained messages), by kind, as
        # recovered from the store: each frontend takes its own at start
        self.frontend_records: dict[str, list[dict[str, Any]]] = {}
        self.vhosts: dict[str, VirtualHost] = {
            default_vhost: VirtualHost(name=default_vhost, timers=self.timers, store=self.store,
                                       paging=paging, churn=self.churn)}

    def authenticate(self, username: str, password: str | None, loopback: bool) -> bool:
        """A login check; `password` None means SASL EXTERNAL (a verified certificate
        named the user, who only has to exist)."""
        if password is None:
            return username in self.access.users
        return self.access.authenticate(username, password, loopback) is not None

    def queued_memory(self) -> int:
        """Bytes the queues' ready messages hold in memory (paged ones not counted)."""
        return sum(queue.memory for vhost in self.vhosts.values()
                   for queue in vhost.queues.values())

    def set_alarm(self, resource: str, active: bool) -> None:
        """Raise or clear a resource alarm (memory, disk); while any is raised, publishers
        are blocked. Listeners hear only when the blocked state changes."""
        was_blocked = bool(self.alarms)
        if active:
            self.alarms.add(resource)
        else:
            self.alarms.discard(resource)
        if bool(self.alarms) != was_blocked:
            for listener in self.alarm_listeners:
                listener(bool(self.alarms))

    def update_secret(self, username: str, secret: bytes) -> bool:
        """Connection.Update-Secret: False when the new secret is refused."""
        return self.access.update_secret(username, secret)

    def dispatch_ready(self) -> None:
        """Deliver from every queue that became ready outside a connection's read pass
        (timers: delayed messages, dead-lettering of expired ones)."""
        for vhost in self.vhosts.values():
            if vhost.ready:
                vhost.ready.dispatch()

    def open_session(self, vhost_name: str, username: str, sink: Sink, *,
                     cancel_notify: bool) -> Session | None:
        """A session on the vhost (None: no such vhost); 530 if the user may not use it."""
        vhost = self.vhosts.get(vhost_name)
        if vhost is None:
            return None
        permission = self.access.permission(username, vhost_name)
        session = Session(vhost, username, sink, cancel_notify=cancel_notify,
                          consumer_timeout=self.consumer_timeout, permission=permission)
        session.topic_permissions = self.access.topic_permission(username, vhost_name)
        return session

    def add_vhost(self, name: str, record: bool = True) -> VirtualHost:
        """The vhost, created (and recorded in the store) if it is new."""
        vhost = self.vhosts.get(name)
        if vhost is None:
            vhost = self.vhosts[name] = VirtualHost(name=name, timers=self.timers,
                                                    store=self.store, paging=self.paging,
                                                    churn=self.churn)
            if record:
                self.store.put_runtime("vhost", name, {"name": name})
        return vhost

    def delete_vhost(self, name: str) -> bool:
        """Drop a vhost with its queues, exchanges, policies and permissions, then tell
        `vhost_deleted_listeners` (its connections are the transport's to close first);
        False if there was none."""
        vhost = self.vhosts.pop(name, None)
        if vhost is None:
            return False
        for queue in list(vhost.queues.values()):
            vhost.remove_queue(queue)
        for exchange in list(vhost.exchanges.values()):
            if exchange.durable and exchange.name and not exchange.name.startswith("amq."):
                self.store.delete_exchange(name, exchange.name)
        for policy_name in list(vhost.policies):
            vhost.clear_policy(policy_name)
        for policy_name in list(vhost.operator_policies):
            vhost.clear_policy(policy_name, operator=True)
        for user, host in [key for key in self.access.permissions if key[1] == name]:
            self.access.clear_permission(user, host)
        self.deleted_vhost_stats.add(vhost.closed_channel_stats)
        self.store.delete_runtime("vhost", name)
        for listener in self.vhost_deleted_listeners:
            listener(name)
        return True

    def restore_runtime(self, kind: str, value: dict[str, Any]) -> None:
        """Re-create one runtime definition recorded in the store (at start)."""
        if kind == "vhost":
            self.add_vhost(value["name"], record=False)
        elif kind in ("policy", "operator_policy"):
            self.add_vhost(value["vhost"], record=False).restore_policy(kind, value)
        elif kind in ("user", "permission", "topic_permission"):
            self.access.restore(kind, value)
        else:
            self.frontend_records.setdefault(kind, []).append(value)
