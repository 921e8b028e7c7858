"""The broker root: users and virtual hosts, and sessions opened against them."""

from __future__ import annotations

import hmac

from amqpbroker.broker.channel import Sink
from amqpbroker.broker.session import Session
from amqpbroker.broker.vhost import VirtualHost


class Broker:
    """All state of one running broker, in memory."""

    def __init__(self, default_user: str = "guest", default_pass: str = "guest",
                 default_vhost: str = "/") -> None:
        self.users: dict[str, str] = {default_user: default_pass}
        self.vhosts: dict[str, VirtualHost] = {default_vhost: VirtualHost(default_vhost)}

    def authenticate(self, username: str, password: str) -> bool:
        """Unknown user and wrong password take the same path and the same time."""
        stored = self.users.get(username)
        expected = (stored if stored is not None else "\x00unknown").encode("utf-8")
        ok = hmac.compare_digest(expected, password.encode("utf-8"))
        return ok and stored is not None

    def open_session(self, vhost_name: str, username: str, sink: Sink,
                     cancel_notify: bool) -> Session | None:
        vhost = self.vhosts.get(vhost_name)
        if vhost is None:
            return None
        return Session(vhost, username, sink, cancel_notify)
