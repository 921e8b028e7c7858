"""The broker root: users and virtual hosts, and sessions opened against them."""

from __future__ import annotations

import hmac
from collections.abc import Callable

from amqpbroker.broker.channel import Sink
from amqpbroker.broker.session import Session
from amqpbroker.broker.timers import Timers
from amqpbroker.broker.vhost import VirtualHost
from amqpbroker.store.base import Store
from amqpbroker.store.memory import MemoryStore


class Broker:
    """All state of one running broker, in memory."""

    def __init__(self, default_user: str = "guest", default_pass: str = "guest",
                 default_vhost: str = "/", timers: Timers | None = None,
                 consumer_timeout: float | None = None, store: Store | None = None) -> None:
        self.timers = timers or Timers()
        self.store: Store = store or MemoryStore()
        self.consumer_timeout = consumer_timeout
        self.users: dict[str, str] = {default_user: default_pass}
        self.alarms: set[str] = set()
        self.alarm_listeners: list[Callable[[bool], None]] = []
        self.vhosts: dict[str, VirtualHost] = {
            default_vhost: VirtualHost(default_vhost, self.timers, self.store)}

    def authenticate(self, username: str, password: str) -> bool:
        """Unknown user and wrong password take the same path and the same time."""
        stored = self.users.get(username)
        expected = (stored if stored is not None else "\x00unknown").encode("utf-8")
        ok = hmac.compare_digest(expected, password.encode("utf-8"))
        return ok and stored is not None

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

    def open_session(self, vhost_name: str, username: str, sink: Sink,
                     cancel_notify: bool) -> Session | None:
        vhost = self.vhosts.get(vhost_name)
        if vhost is None:
            return None
        return Session(vhost, username, sink, cancel_notify, self.consumer_timeout)
