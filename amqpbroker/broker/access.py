"""Users, password hashes and per-vhost permissions, checked as RabbitMQ checks them.

Passwords are stored as RabbitMQ stores them (`rabbit_password_hashing_sha256`: base64 of
a 4-byte salt followed by SHA-256(salt + password)) and compared in constant time. An
unknown user costs the same as a wrong password and gets the same answer.

Permissions are three regular expressions per user and vhost (configure, write, read),
searched (not anchored) in the resource name, as RabbitMQ does; an empty pattern matches
nothing. The default exchange is checked under the name `amq.default`.

Topic permissions are two more (write, read) per user, vhost and topic exchange, searched
in the routing key of a publish (write) or the binding key of a bind or unbind (read),
after `{username}` and `{vhost}` (and, for MQTT, `{client_id}`) in them are replaced. A
user with no topic permission for an exchange may use any key on it.

Every change made through `Access` (not the default user's creation) is recorded in the
store, so users and permissions survive a restart with a data directory.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from amqpbroker import errors

if TYPE_CHECKING:
    from amqpbroker.store.base import Store

SHA256 = "rabbit_password_hashing_sha256"
HASHES = {
    SHA256: hashlib.sha256,
    "rabbit_password_hashing_sha512": hashlib.sha512,
    "rabbit_password_hashing_md5": hashlib.md5,
}
PERMISSION_KINDS = ("configure", "write", "read")


def hash_password(password: str, algorithm: str = SHA256, salt: bytes | None = None) -> str:
    """RabbitMQ's password hash: base64(salt + H(salt + password))."""
    salt = os.urandom(4) if salt is None else salt
    digest = HASHES[algorithm](salt + password.encode("utf-8")).digest()
    return base64.b64encode(salt + digest).decode("ascii")


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern or "^$")


@dataclass
class Permission:
    """What one user may do in one vhost."""

    configure: str = ".*"
    write: str = ".*"
    read: str = ".*"
    _compiled: dict[str, re.Pattern[str]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for kind in PERMISSION_KINDS:
            self._compiled[kind] = _compile(getattr(self, kind))

    def allows(self, kind: str, name: str) -> bool:
        return self._compiled[kind].search(name) is not None


@dataclass
class TopicPermission:
    """What keys one user may use on one topic exchange of one vhost."""

    exchange: str
    write: str = ".*"
    read: str = ".*"

    def allows(self, kind: str, routing_key: str, variables: dict[str, str]) -> bool:
        pattern = getattr(self, kind) or "^$"
        for name, value in variables.items():
            pattern = pattern.replace("{" + name + "}", value)
        try:
            return re.search(pattern, routing_key) is not None
        except re.error:
            return False


@dataclass
class User:
    name: str
    password_hash: str
    hashing_algorithm: str = SHA256
    tags: list[str] = field(default_factory=list)

    def check_password(self, password: str) -> bool:
        stored = base64.b64decode(self.password_hash)
        salt = stored[:4]
        candidate = hash_password(password, self.hashing_algorithm, salt)
        return hmac.compare_digest(candidate.encode("ascii"), self.password_hash.encode("ascii"))


_NOBODY = User("", hash_password("\x00"))


class Access:
    """The users of a broker and their permissions."""

    def __init__(self, loopback_users: tuple[str, ...] = ("guest",),
                 store: Store | None = None) -> None:
        self.users: dict[str, User] = {}
        self.permissions: dict[tuple[str, str], Permission] = {}
        self.topic_permissions: dict[tuple[str, str], dict[str, TopicPermission]] = {}
        self.loopback_users = set(loopback_users)
        self.store = store

    def _record(self, kind: str, key: tuple[str, ...], value: dict[str, Any] | None) -> None:
        if self.store is None:
            return
        text = "\x00".join(key)
        if value is None:
            self.store.delete_runtime(kind, text)
        else:
            self.store.put_runtime(kind, text, value)

    def add_user(self, name: str, password: str | None = None, *, password_hash: str = "",
                 hashing_algorithm: str = SHA256, tags: list[str] | None = None,
                 record: bool = True) -> User:
        if password is not None:
            password_hash = hash_password(password, hashing_algorithm)
        user = User(name, password_hash, hashing_algorithm, list(tags or []))
        unchanged = self.users.get(name) == user
        self.users[name] = user
        if record and not unchanged:
            self._record("user", (name,), {"name": name, "password_hash": password_hash,
                                           "hashing_algorithm": hashing_algorithm,
                                           "tags": user.tags})
        return user

    def set_permission(self, user: str, vhost: str, configure: str = ".*", write: str = ".*",
                       read: str = ".*", record: bool = True) -> None:
        permission = Permission(configure, write, read)
        unchanged = self.permissions.get((user, vhost)) == permission
        self.permissions[(user, vhost)] = permission
        if record and not unchanged:
            self._record("permission", (user, vhost), {
                "user": user, "vhost": vhost, "configure": configure, "write": write,
                "read": read})

    def set_topic_permission(self, user: str, vhost: str, exchange: str, write: str = ".*",
                             read: str = ".*") -> None:
        permission = TopicPermission(exchange, write, read)
        exchanges = self.topic_permissions.setdefault((user, vhost), {})
        if exchanges.get(exchange) == permission:
            return
        exchanges[exchange] = permission
        self._record("topic_permission", (user, vhost, exchange), {
            "user": user, "vhost": vhost, "exchange": exchange, "write": write, "read": read})

    def delete_user(self, name: str) -> bool:
        """Remove a user and every permission they had; False if there was none."""
        if self.users.pop(name, None) is None:
            return False
        self._record("user", (name,), None)
        for user, vhost in [key for key in self.permissions if key[0] == name]:
            self.clear_permission(user, vhost)
        for user, vhost in [key for key in self.topic_permissions if key[0] == name]:
            for exchange in list(self.topic_permissions[(user, vhost)]):
                self.clear_topic_permission(user, vhost, exchange)
        return True

    def clear_permission(self, user: str, vhost: str) -> bool:
        if self.permissions.pop((user, vhost), None) is None:
            return False
        self._record("permission", (user, vhost), None)
        return True

    def clear_topic_permission(self, user: str, vhost: str, exchange: str) -> bool:
        if self.topic_permissions.get((user, vhost), {}).pop(exchange, None) is None:
            return False
        self._record("topic_permission", (user, vhost, exchange), None)
        return True

    def restore(self, kind: str, value: dict[str, Any]) -> None:
        """Re-create a user or (topic) permission recorded in the store."""
        if kind == "user":
            self.add_user(value["name"], password_hash=value["password_hash"],
                          hashing_algorithm=value["hashing_algorithm"], tags=value["tags"],
                          record=False)
        elif kind == "permission":
            self.permissions[(value["user"], value["vhost"])] = Permission(
                value["configure"], value["write"], value["read"])
        elif kind == "topic_permission":
            self.topic_permissions.setdefault((value["user"], value["vhost"]), {})[
                value["exchange"]] = TopicPermission(value["exchange"], value["write"],
                                                     value["read"])

    def topic_permission(self, user: str, vhost: str) -> dict[str, TopicPermission]:
        """The user's topic permissions in the vhost, by exchange name: the live table,
        which later changes update in place."""
        return self.topic_permissions.setdefault((user, vhost), {})

    def authenticate(self, username: str, password: str, loopback: bool) -> User | None:
        """The user, if the password is right and they may connect from where they are.
        Unknown users go through the same hashing as known ones."""
        user = self.users.get(username)
        ok = (user or _NOBODY).check_password(password)
        if user is None or not ok or not user.password_hash:
            return None
        if username in self.loopback_users and not loopback:
            return None
        return user

    def update_secret(self, username: str, secret: bytes) -> bool:
        """Connection.Update-Secret: may this connection go on with the new secret? The
        internal user database accepts any (the secret means something only to a token
        backend, which would validate it here and replace the connection's token)."""
        return True

    def permission(self, user: str, vhost: str) -> Permission:
        """The user's permission in the vhost, or 530 as RabbitMQ answers Connection.Open."""
        permission = self.permissions.get((user, vhost))
        if permission is None:
            raise errors.AMQPConnectionError(
                errors.NOT_ALLOWED, f"access to vhost '{vhost}' refused for user '{user}'",
                10, 40)
        return permission

