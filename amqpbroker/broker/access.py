"""Users, password hashes and per-vhost permissions, checked as RabbitMQ checks them.

Passwords are stored as RabbitMQ stores them (`rabbit_password_hashing_sha256`: base64 of
a 4-byte salt followed by SHA-256(salt + password)) and compared in constant time. An
unknown user costs the same as a wrong password and gets the same answer.

Permissions are three regular expressions per user and vhost (configure, write, read),
searched (not anchored) in the resource name, as RabbitMQ does; an empty pattern matches
nothing. The default exchange is checked under the name `amq.default`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from dataclasses import dataclass, field

from amqpbroker import errors

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

    def __init__(self, loopback_users: tuple[str, ...] = ("guest",)) -> None:
        self.users: dict[str, User] = {}
        self.permissions: dict[tuple[str, str], Permission] = {}
        self.loopback_users = set(loopback_users)

    def add_user(self, name: str, password: str | None = None, *, password_hash: str = "",
                 hashing_algorithm: str = SHA256, tags: list[str] | None = None) -> User:
        if password is not None:
            password_hash = hash_password(password, hashing_algorithm)
        user = User(name, password_hash, hashing_algorithm, list(tags or []))
        self.users[name] = user
        return user

    def set_permission(self, user: str, vhost: str, configure: str = ".*", write: str = ".*",
                       read: str = ".*") -> None:
        self.permissions[(user, vhost)] = Permission(configure, write, read)

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

    def permission(self, user: str, vhost: str) -> Permission:
        """The user's permission in the vhost, or 530 as RabbitMQ answers Connection.Open."""
        permission = self.permissions.get((user, vhost))
        if permission is None:
            raise errors.ConnectionError_(
                errors.NOT_ALLOWED, f"access to vhost '{vhost}' refused for user '{user}'",
                10, 40)
        return permission

