"""Definitions files: RabbitMQ's `definitions.json`, loaded, applied to a broker and exported.

This module owns the definitions format: reading and validating a file in the schema that
`rabbitmqctl export_definitions` and the management API produce (`load`, `parse`),
applying it to a running broker model (`apply`), and writing the broker's users, vhosts,
permissions and durable topology back in the same schema (`export`). Every change goes
through the broker's own entry points (`Broker.add_vhost`, `Access.add_user`,
`Access.set_permission`, `VirtualHost.declare_exchange` / `declare_queue` / `bind_queue` /
`bind_exchange`), so a definition is checked exactly as the same AMQP command would be.

The schema, section by section:

* `rabbit_version`, `rabbitmq_version` and any other top-level key not listed here:
  accepted and ignored.
* `users`: `{name, password_hash, hashing_algorithm, tags, limits}`. `hashing_algorithm`
  is `rabbit_password_hashing_sha256` (the default), `..._sha512` or `..._md5`; the hash
  is RabbitMQ's (base64 of a 4-byte salt and H(salt + password)), so hashes exported from
  RabbitMQ work unchanged. An empty `password_hash` makes a user who cannot log in with a
  password. `tags` is a list or a comma-separated string. `limits` is ignored. As a
  convenience (not RabbitMQ's), a user may give a plain `password` instead of
  `password_hash`; it is hashed when the file is loaded.
* `vhosts`: `{name, ...}`; only the name is used (description, tags, metadata, limits,
  default queue type are ignored).
* `permissions`: `{user, vhost, configure, write, read}`, each a regular expression.
* `topic_permissions`: `{user, vhost, exchange, write, read}`: regular expressions the
  routing keys of publishes (write) and the binding keys of binds (read) on that topic
  exchange must match.
* `exchanges`: `{name, vhost, type, durable, auto_delete, internal, arguments}`.
* `queues`: `{name, vhost, durable, auto_delete, arguments}` (never exclusive).
* `bindings`: `{source, vhost, destination, destination_type, routing_key, arguments}`,
  `destination_type` being `queue` or `exchange`.
* `policies` and `operator_policies`: `{vhost, name, pattern, apply-to, definition,
  priority}`; `apply-to` defaults to `all`, `priority` to 0. They are validated as
  `VirtualHost.set_policy` validates them (RabbitMQ's texts, e.g. `<<"x">> is not a
  valid message TTL`).
* `parameters` and `global_parameters`: accepted and ignored (this broker has no runtime
  parameters); `Definitions.ignored` counts their entries so the caller can say so.

`durable` defaults to true, `auto_delete` and `internal` to false, `arguments` to `{}` and
`routing_key` to `""`. As RabbitMQ does, exchanges named `amq.*` or `""` and queues named
`amq.*` are skipped rather than imported (`Definitions.skipped` lists them).

Any fault raises `DefinitionsError`, whose message names the file and the entry, e.g.
`definitions.json: queues[2] (queue 'q' in vhost '/'): 'durable' must be true or false`.
`apply` checks every reference (vhosts, users, binding ends) and every queue's arguments
before it changes anything; only a conflict the broker itself finds while declaring (an
existing entity with other properties, an exclusive queue of a connection) can stop it
part-way. Applying the same definitions again, for instance at every start on top of
the recovered durable state, changes nothing and succeeds.
"""

from __future__ import annotations

import base64
import binascii
import copy
import datetime
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from amqpbroker import errors
from amqpbroker.broker.access import HASHES, SHA256, hash_password
from amqpbroker.broker.arguments import check_queue
from amqpbroker.broker.broker import Broker
from amqpbroker.broker.exchange import DELAYED_TYPE, Exchange
from amqpbroker.broker.policies import Policy, PolicyError, make_policy
from amqpbroker.broker.queue import Queue
from amqpbroker.broker.routing import ROUTERS
from amqpbroker.broker.vhost import VirtualHost

RABBIT_VERSION = "3.13.0"
RESERVED_PREFIX = "amq."
EXCHANGE_TYPES = (*sorted(ROUTERS), DELAYED_TYPE)
IGNORED_SECTIONS = ("parameters", "global_parameters")
VHOST_SECTIONS = ("parameters", "policies", "queues", "exchanges", "bindings")
SECTIONS = ("users", "vhosts", "permissions", "topic_permissions", "exchanges", "queues",
            "bindings", "policies", "operator_policies",
            *IGNORED_SECTIONS)
MAX_SHORTSTR = 255
_INT64 = (-(2**63), 2**63 - 1)
_MISSING: Any = object()


class DefinitionsError(Exception):
    """A definitions file that cannot be used; the message names the file and the entry."""

    def __init__(self, source: str, where: str, problem: str) -> None:
        self.source = source
        self.where = where
        self.problem = problem
        super().__init__(f"{source}: {where}: {problem}" if where else f"{source}: {problem}")


# --- the parsed form ------------------------------------------------------------------


@dataclass(frozen=True)
class UserDefinition:
    name: str
    password_hash: str
    hashing_algorithm: str
    tags: tuple[str, ...]
    where: str


@dataclass(frozen=True)
class VhostDefinition:
    name: str
    where: str


@dataclass(frozen=True)
class PermissionDefinition:
    user: str
    vhost: str
    configure: str
    write: str
    read: str
    where: str


@dataclass(frozen=True)
class TopicPermissionDefinition:
    user: str
    vhost: str
    exchange: str
    write: str
    read: str
    where: str


@dataclass(frozen=True)
class ExchangeDefinition:
    name: str
    vhost: str
    type: str
    durable: bool
    auto_delete: bool
    internal: bool
    arguments: dict[str, Any]
    where: str


@dataclass(frozen=True)
class QueueDefinition:
    name: str
    vhost: str
    durable: bool
    auto_delete: bool
    arguments: dict[str, Any]
    where: str


@dataclass(frozen=True)
class BindingDefinition:
    vhost: str
    source: str
    destination: str
    destination_type: str  # "queue" or "exchange"
    routing_key: str
    arguments: dict[str, Any]
    where: str


@dataclass(frozen=True)
class PolicyDefinition:
    policy: Policy  # validated, with its vhost, name and whether it is an operator policy
    where: str


@dataclass
class Definitions:
    """A validated definitions document, ready to `apply`."""

    source: str
    rabbit_version: str | None = None
    users: list[UserDefinition] = field(default_factory=list)
    vhosts: list[VhostDefinition] = field(default_factory=list)
    permissions: list[PermissionDefinition] = field(default_factory=list)
    topic_permissions: list[TopicPermissionDefinition] = field(default_factory=list)
    exchanges: list[ExchangeDefinition] = field(default_factory=list)
    queues: list[QueueDefinition] = field(default_factory=list)
    bindings: list[BindingDefinition] = field(default_factory=list)
    policies: list[PolicyDefinition] = field(default_factory=list)
    operator_policies: list[PolicyDefinition] = field(default_factory=list)
    ignored: dict[str, int] = field(default_factory=dict)  # section -> entries not used
    skipped: list[str] = field(default_factory=list)  # entries skipped as RabbitMQ does

    def summary(self) -> str:
        """One line for the log: what will be applied, ignored and skipped."""
        text = (f"{len(self.vhosts)} vhosts, {len(self.users)} users, "
                f"{len(self.permissions)} permissions, "
                f"{len(self.topic_permissions)} topic permissions, "
                f"{len(self.exchanges)} exchanges, "
                f"{len(self.queues)} queues, {len(self.bindings)} bindings, "
                f"{len(self.policies)} policies, "
                f"{len(self.operator_policies)} operator policies")
        ignored = [f"{count} {name}" for name, count in self.ignored.items() if count]
        if ignored:
            text += f"; ignored: {', '.join(ignored)}"
        if self.skipped:
            text += f"; skipped: {', '.join(self.skipped)}"
        return text


# --- load and parse -----------------------------------------------------------------


def load(path: str | os.PathLike[str]) -> Definitions:
    """Read and validate a definitions file. Raises DefinitionsError."""
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8-sig") as file:
            text = file.read()
    except OSError as exc:
        raise DefinitionsError(source, "", f"cannot read the file ({exc.strerror or exc})"
                               ) from None
    except UnicodeDecodeError as exc:
        raise DefinitionsError(source, "", f"not UTF-8 text (byte {exc.start}: {exc.reason})"
                               ) from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DefinitionsError(
            source, "", f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    except RecursionError:
        raise DefinitionsError(source, "", "not valid JSON: nested too deeply") from None
    return parse(document, source)


def parse(document: Any, source: str = "definitions") -> Definitions:
    """Validate a definitions document already decoded from JSON (e.g. `export`'s output);
    `source` names it in errors. Raises DefinitionsError."""
    if not isinstance(document, dict):
        raise DefinitionsError(source, "", "the top level must be a JSON object, not "
                                           f"{_json_type(document)}")
    sections: dict[str, list[Any]] = {}
    for name in SECTIONS:
        value = document.get(name, [])
        if value is None:
            value = []
        if not isinstance(value, list):
            raise DefinitionsError(source, "", f"'{name}' must be a list, not "
                                               f"{_json_type(value)}")
        sections[name] = value
    version = document.get("rabbit_version", document.get("rabbitmq_version"))
    definitions = Definitions(source, version if isinstance(version, str) else None)
    for index, raw in enumerate(sections["users"]):
        definitions.users.append(_parse_user(_Entry(source, "users", index, raw=raw)))
    for index, raw in enumerate(sections["vhosts"]):
        entry = _Entry(source, "vhosts", index, raw=raw)
        name = entry.name("vhost")
        definitions.vhosts.append(VhostDefinition(name, entry.where))
    for index, raw in enumerate(sections["permissions"]):
        definitions.permissions.append(
            _parse_permission(_Entry(source, "permissions", index, raw=raw)))
    for index, raw in enumerate(sections["topic_permissions"]):
        definitions.topic_permissions.append(
            _parse_topic_permission(_Entry(source, "topic_permissions", index, raw=raw)))
    for index, raw in enumerate(sections["exchanges"]):
        exchange = _parse_exchange(_Entry(source, "exchanges", index, raw=raw))
        if exchange.name == "" or exchange.name.startswith(RESERVED_PREFIX):
            definitions.skipped.append(exchange.where)
        else:
            definitions.exchanges.append(exchange)
    for index, raw in enumerate(sections["queues"]):
        queue = _parse_queue(_Entry(source, "queues", index, raw=raw))
        if queue.name.startswith(RESERVED_PREFIX):
            definitions.skipped.append(queue.where)
        else:
            definitions.queues.append(queue)
    for index, raw in enumerate(sections["bindings"]):
        definitions.bindings.append(_parse_binding(_Entry(source, "bindings", index, raw=raw)))
    for index, raw in enumerate(sections["policies"]):
        definitions.policies.append(_parse_policy(_Entry(source, "policies", index, raw=raw)))
    for index, raw in enumerate(sections["operator_policies"]):
        definitions.operator_policies.append(
            _parse_policy(_Entry(source, "operator_policies", index, raw=raw), operator=True))
    for name in IGNORED_SECTIONS:
        definitions.ignored[name] = len(sections[name])
    return definitions


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


class _Entry:
    """One entry of one section, read field by field; errors name the entry."""

    def __init__(self, source: str, section: str, index: int, *, raw: Any) -> None:
        self.source = source
        self.where = f"{section}[{index}]"
        self.index_label = self.where
        if not isinstance(raw, dict):
            raise self.error(f"must be an object, not {_json_type(raw)}")
        self.raw: dict[str, Any] = raw

    def error(self, problem: str) -> DefinitionsError:
        return DefinitionsError(self.source, self.where, problem)

    def label(self, text: str) -> None:
        """Name the entry by what it defines, once that is known."""
        self.where = f"{self.index_label} ({text})"

    def string(self, key: str, default: Any = _MISSING, *, non_empty: bool = False,
               shortstr: bool = False) -> str:
        value = self.raw.get(key, _MISSING)
        if value is _MISSING:
            if default is _MISSING:
                raise self.error(f"'{key}' is missing")
            return default
        if not isinstance(value, str):
            raise self.error(f"'{key}' must be a string, not {_json_type(value)}")
        if non_empty and not value:
            raise self.error(f"'{key}' must not be empty")
        if shortstr and len(value.encode("utf-8")) > MAX_SHORTSTR:
            raise self.error(f"'{key}' is longer than {MAX_SHORTSTR} bytes")
        return value

    def name(self, kind: str, key: str = "name") -> str:
        return self.string(key, non_empty=kind != "exchange", shortstr=kind != "user")

    def boolean(self, key: str, default: bool) -> bool:
        value = self.raw.get(key, default)
        if not isinstance(value, bool):
            raise self.error(f"'{key}' must be true or false")
        return value

    def table(self, key: str = "arguments") -> dict[str, Any]:
        value = self.raw.get(key)
        if value is None or value == []:  # RabbitMQ writes an empty table as [] at times
            return {}
        if not isinstance(value, dict):
            raise self.error(f"'{key}' must be an object, not {_json_type(value)}")
        for path, item in _walk(value, key):
            if isinstance(item, int) and not isinstance(item, bool) and not (
                    _INT64[0] <= item <= _INT64[1]):
                raise self.error(f"{path} is out of range for a 64-bit integer")
        for arg in value:
            if len(arg.encode("utf-8")) > MAX_SHORTSTR:
                raise self.error(f"argument name '{arg[:40]}...' is longer than "
                                 f"{MAX_SHORTSTR} bytes")
        return value


def _walk(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    """Every nested value of a JSON value, with its path for error messages."""
    yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, f"{path}['{key}']")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}[{index}]")


def _parse_user(entry: _Entry) -> UserDefinition:
    name = entry.name("user")
    entry.label(f"user '{name}'")
    algorithm = entry.string("hashing_algorithm", SHA256)
    if algorithm not in HASHES:
        raise entry.error(f"unknown 'hashing_algorithm' '{algorithm}' (expected one of "
                          f"{', '.join(HASHES)})")
    has_password, has_hash = "password" in entry.raw, "password_hash" in entry.raw
    if has_password and has_hash:
        raise entry.error("give either 'password' or 'password_hash', not both")
    if has_password:
        password_hash = hash_password(entry.string("password"), algorithm)
    elif has_hash:
        password_hash = entry.string("password_hash")
        _check_hash(entry, password_hash, algorithm)
    else:
        raise entry.error("'password_hash' is missing (or give a plain 'password')")
    tags = entry.raw.get("tags", [])
    if tags is None:
        tags = []
    if isinstance(tags, str):
        tags = [tag.strip() for tag in tags.split(",")]
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise entry.error("'tags' must be a list of strings or a comma-separated string")
    return UserDefinition(name, password_hash, algorithm, tuple(tag for tag in tags if tag),
                          entry.where)


def _check_hash(entry: _Entry, password_hash: str, algorithm: str) -> None:
    if not password_hash:
        return  # no password: this user cannot log in with one
    size = 4 + HASHES[algorithm]().digest_size
    try:
        decoded = base64.b64decode(password_hash, validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if len(decoded) != size:
        raise entry.error(f"'password_hash' is not a {algorithm} hash (base64 of {size} "
                          "bytes: a 4-byte salt and the digest)")


def _patterns(entry: _Entry, kinds: tuple[str, ...]) -> list[str]:
    patterns = []
    for kind in kinds:
        pattern = entry.string(kind)
        try:
            re.compile(pattern)
        except re.error as exc:
            raise entry.error(f"'{kind}' is not a valid regular expression ({exc})") from None
        patterns.append(pattern)
    return patterns


def _parse_permission(entry: _Entry) -> PermissionDefinition:
    user = entry.string("user", non_empty=True)
    entry.label(f"user '{user}'")
    vhost = entry.name("vhost", "vhost")
    entry.label(f"user '{user}' in vhost '{vhost}'")
    configure, write, read = _patterns(entry, ("configure", "write", "read"))
    return PermissionDefinition(user, vhost, configure, write, read, entry.where)


def _parse_topic_permission(entry: _Entry) -> TopicPermissionDefinition:
    user = entry.string("user", non_empty=True)
    entry.label(f"user '{user}'")
    vhost = entry.name("vhost", "vhost")
    exchange = entry.string("exchange", shortstr=True)
    entry.label(f"user '{user}' on exchange '{exchange}' in vhost '{vhost}'")
    write, read = _patterns(entry, ("write", "read"))
    return TopicPermissionDefinition(user, vhost, exchange, write, read, entry.where)


def _parse_exchange(entry: _Entry) -> ExchangeDefinition:
    name = entry.name("exchange")
    entry.label(f"exchange '{name}'")
    vhost = entry.name("vhost", "vhost")
    entry.label(f"exchange '{name}' in vhost '{vhost}'")
    type_ = entry.string("type", non_empty=True)
    if type_ not in EXCHANGE_TYPES:
        raise entry.error(f"unknown exchange type '{type_}' (expected one of "
                          f"{', '.join(EXCHANGE_TYPES)})")
    return ExchangeDefinition(
        name, vhost, type_, entry.boolean("durable", True), entry.boolean("auto_delete", False),
        entry.boolean("internal", False), entry.table(), entry.where)


def _parse_queue(entry: _Entry) -> QueueDefinition:
    name = entry.name("queue")
    entry.label(f"queue '{name}'")
    vhost = entry.name("vhost", "vhost")
    entry.label(f"queue '{name}' in vhost '{vhost}'")
    return QueueDefinition(name, vhost, entry.boolean("durable", True),
                           entry.boolean("auto_delete", False), entry.table(), entry.where)


def _parse_binding(entry: _Entry) -> BindingDefinition:
    source = entry.string("source", shortstr=True)
    destination = entry.string("destination", shortstr=True)
    kind = entry.string("destination_type")
    if kind not in ("queue", "exchange"):
        raise entry.error(f"'destination_type' must be 'queue' or 'exchange', not '{kind}'")
    entry.label(f"binding of exchange '{source}' to {kind} '{destination}'")
    vhost = entry.name("vhost", "vhost")
    entry.label(f"binding of exchange '{source}' to {kind} '{destination}' in vhost '{vhost}'")
    if not source or (kind == "exchange" and not destination):
        raise entry.error("the default exchange cannot be bound")
    if not destination:
        raise entry.error("'destination' must not be empty")
    routing_key = entry.string("routing_key", "", shortstr=True)
    return BindingDefinition(vhost, source, destination, kind, routing_key, entry.table(),
                             entry.where)


def _parse_policy(entry: _Entry, operator: bool = False) -> PolicyDefinition:
    kind = "operator policy" if operator else "policy"
    name = entry.string("name", non_empty=True)
    entry.label(f"{kind} '{name}'")
    vhost = entry.name("vhost", "vhost")
    entry.label(f"{kind} '{name}' in vhost '{vhost}'")
    for key in ("pattern", "definition"):
        if key not in entry.raw:
            raise entry.error(f"'{key}' is missing")
    try:
        policy = make_policy(vhost, name, entry.raw["pattern"], entry.raw["definition"],
                             entry.raw.get("priority", 0), entry.raw.get("apply-to", "all"),
                             operator)
    except PolicyError as exc:
        raise entry.error(exc.detail.replace("\n", "; ")) from None
    return PolicyDefinition(policy, entry.where)


# --- apply ----------------------------------------------------------------------------


def apply(broker: Broker, definitions: Definitions) -> None:
    """Create or update what the definitions describe: vhosts, users, permissions,
    policies, exchanges, queues and bindings, in that order. Idempotent. Raises DefinitionsError
    (checked before any change, except conflicts found while declaring).

    Run it where the broker model runs (its event loop, or before serving). Durable
    entities it creates are recorded in the store's pending batch like any declare."""
    for _ in steps(broker, definitions):
        pass


def steps(broker: Broker, definitions: Definitions) -> Iterator[None]:
    """`apply` one object at a time: it yields after each, so that a caller on a running
    event loop can let other work run between bounded steps."""
    _check(broker, definitions)
    for vhost in definitions.vhosts:
        broker.add_vhost(vhost.name)
        yield
    access = broker.access
    for user in definitions.users:
        access.add_user(user.name, password_hash=user.password_hash,
                        hashing_algorithm=user.hashing_algorithm, tags=list(user.tags))
        yield
    for permission in definitions.permissions:
        access.set_permission(permission.user, permission.vhost, permission.configure,
                              permission.write, permission.read)
        yield
    for topic in definitions.topic_permissions:
        access.set_topic_permission(topic.user, topic.vhost, topic.exchange, topic.write,
                                    topic.read)
        yield
    source = definitions.source
    for entry in (*definitions.policies, *definitions.operator_policies):
        policy = entry.policy
        try:
            _vhost(broker, policy.vhost, source, entry.where).set_policy(
                policy.name, policy.pattern, policy.definition, policy.priority,
                policy.apply_to, policy.operator)
        except PolicyError as exc:
            raise DefinitionsError(source, entry.where, exc.detail) from None
        yield
    for exchange in definitions.exchanges:
        with _reported(source, exchange.where):
            _vhost(broker, exchange.vhost, source, exchange.where).declare_exchange(
                exchange.name, exchange.type, passive=False, durable=exchange.durable,
                auto_delete=exchange.auto_delete, internal=exchange.internal,
                arguments=copy.deepcopy(exchange.arguments))
        yield
    for queue in definitions.queues:
        with _reported(source, queue.where):
            _vhost(broker, queue.vhost, source, queue.where).declare_queue(
                None, queue.name, passive=False, durable=queue.durable, exclusive=False,
                auto_delete=queue.auto_delete, arguments=copy.deepcopy(queue.arguments))
        yield
    for binding in definitions.bindings:
        host = _vhost(broker, binding.vhost, source, binding.where)
        arguments = copy.deepcopy(binding.arguments)
        with _reported(source, binding.where):
            if binding.destination_type == "queue":
                host.bind_queue(None, binding.destination, binding.source,
                                binding.routing_key, arguments)
            else:
                host.bind_exchange(binding.destination, binding.source, binding.routing_key,
                                   arguments)
        yield


def _vhost(broker: Broker, name: str, source: str, where: str) -> VirtualHost:
    """The vhost an entry names; it existed at the start, but an import in steps lets
    other work run, which may have deleted it since."""
    vhost = broker.vhosts.get(name)
    if vhost is None:
        raise DefinitionsError(source, where, f"vhost '{name}' was deleted during the import")
    return vhost


@contextmanager
def _reported(source: str, where: str) -> Iterator[None]:
    """The broker's AMQP error, as a DefinitionsError naming the entry."""
    try:
        yield
    except errors.AMQPError as exc:
        raise DefinitionsError(source, where, exc.reply_text) from None


def _check(broker: Broker, definitions: Definitions) -> None:
    """Every reference resolves, in the file or on the broker; every queue's arguments
    pass the broker's own checks. Changes nothing."""
    source = definitions.source
    vhosts = set(broker.vhosts) | {vhost.name for vhost in definitions.vhosts}
    users = set(broker.access.users) | {user.name for user in definitions.users}

    def known_vhost(name: str, where: str) -> None:
        if name not in vhosts:
            raise DefinitionsError(source, where, f"unknown vhost '{name}' (not in 'vhosts' "
                                                  "and not on the broker)")

    permissions: list[PermissionDefinition | TopicPermissionDefinition] = [
        *definitions.permissions, *definitions.topic_permissions]
    for permission in permissions:
        if permission.user not in users:
            raise DefinitionsError(source, permission.where,
                                   f"unknown user '{permission.user}' (not in 'users' and "
                                   "not on the broker)")
        known_vhost(permission.vhost, permission.where)
    for entry in (*definitions.policies, *definitions.operator_policies):
        known_vhost(entry.policy.vhost, entry.where)
    exchanges: dict[str, set[str]] = {}
    queues: dict[str, set[str]] = {}
    for name in vhosts:
        host = broker.vhosts.get(name) or VirtualHost(name=name, timers=broker.timers,
                                                      store=broker.store)
        exchanges[name] = set(host.exchanges)
        queues[name] = set(host.queues)
    for exchange in definitions.exchanges:
        known_vhost(exchange.vhost, exchange.where)
        exchanges[exchange.vhost].add(exchange.name)
    for queue in definitions.queues:
        known_vhost(queue.vhost, queue.where)
        with _reported(source, queue.where):
            check_queue(queue.name, queue.vhost, queue.durable, False, queue.auto_delete,
                        queue.arguments)
        queues[queue.vhost].add(queue.name)
    for binding in definitions.bindings:
        known_vhost(binding.vhost, binding.where)
        if binding.source not in exchanges[binding.vhost]:
            raise DefinitionsError(source, binding.where,
                                   f"no exchange '{binding.source}' in vhost "
                                   f"'{binding.vhost}' (not in 'exchanges' and not on the "
                                   "broker)")
        targets = queues if binding.destination_type == "queue" else exchanges
        if binding.destination not in targets[binding.vhost]:
            raise DefinitionsError(source, binding.where,
                                   f"no {binding.destination_type} '{binding.destination}' "
                                   f"in vhost '{binding.vhost}' (not in "
                                   f"'{binding.destination_type}s' and not on the broker)")


# --- export ---------------------------------------------------------------------------


def export(broker: Broker) -> dict[str, Any]:
    """The broker's users, vhosts, permissions, policies and durable topology in
    RabbitMQ's definitions schema (JSON-serialisable). Exclusive and non-durable queues and
    exchanges, `amq.*` ones and the default exchange are left out, as are bindings that
    involve anything left out (bindings of the predeclared `amq.*` exchanges are kept)."""
    access = broker.access
    users = [{"name": user.name, "password_hash": user.password_hash,
              "hashing_algorithm": user.hashing_algorithm, "tags": list(user.tags),
              "limits": {}}
             for user in sorted(access.users.values(), key=lambda u: u.name)]
    vhosts = [{"name": name, "limits": [], "metadata": {"description": "", "tags": []}}
              for name in sorted(broker.vhosts)]
    permissions = [{"user": user, "vhost": vhost, "configure": permission.configure,
                    "write": permission.write, "read": permission.read}
                   for (user, vhost), permission in sorted(access.permissions.items())
                   if user in access.users and vhost in broker.vhosts]
    topic_permissions = [{"user": user, "vhost": vhost, "exchange": exchange,
                          "write": topic.write, "read": topic.read}
                         for (user, vhost), topics in sorted(access.topic_permissions.items())
                         if user in access.users and vhost in broker.vhosts
                         for exchange, topic in sorted(topics.items())]
    exchanges: list[dict[str, Any]] = []
    queues: list[dict[str, Any]] = []
    bindings: list[dict[str, Any]] = []
    for vhost_name in sorted(broker.vhosts):
        host = broker.vhosts[vhost_name]
        for exchange in sorted(host.exchanges.values(), key=lambda x: x.name):
            if _exported_exchange(exchange):
                exchanges.append({
                    "name": exchange.name, "vhost": vhost_name, "type": exchange.type,
                    "durable": True, "auto_delete": exchange.auto_delete,
                    "internal": exchange.internal,
                    "arguments": jsonable(exchange.arguments)})
        for queue in sorted(host.queues.values(), key=lambda q: q.name):
            if _exported_queue(queue):
                queues.append({
                    "name": queue.name, "vhost": vhost_name, "durable": True,
                    "auto_delete": queue.auto_delete, "arguments": jsonable(queue.arguments)})
        found = []
        for exchange in host.exchanges.values():
            if not _bindable_exchange(exchange):
                continue
            for (destination, routing_key, _frozen), arguments in exchange.bindings.items():
                if isinstance(destination, Exchange):
                    if not _bindable_exchange(destination):
                        continue
                    kind = "exchange"
                elif isinstance(destination, Queue) and _exported_queue(destination):
                    kind = "queue"
                else:
                    continue
                found.append({"source": exchange.name, "vhost": vhost_name,
                              "destination": destination.name, "destination_type": kind,
                              "routing_key": routing_key, "arguments": jsonable(arguments)})
        found.sort(key=lambda b: (b["source"], b["destination_type"], b["destination"],
                                  b["routing_key"], json.dumps(b["arguments"], sort_keys=True)))
        bindings.extend(found)
    return {
        "rabbit_version": RABBIT_VERSION,
        "rabbitmq_version": RABBIT_VERSION,
        "users": users,
        "vhosts": vhosts,
        "permissions": permissions,
        "topic_permissions": topic_permissions,
        "parameters": [],
        "global_parameters": [],
        "policies": _policies(broker, operator=False),
        "operator_policies": _policies(broker, operator=True),
        "queues": queues,
        "exchanges": exchanges,
        "bindings": bindings,
    }


def export_vhost(broker: Broker, vhost: str) -> dict[str, Any]:
    """One vhost's part of `export`, in RabbitMQ's per-vhost shape: `rabbit_version`,
    `parameters`, `policies`, `queues`, `exchanges` and `bindings`, without `vhost` in
    the entries (no users, vhosts or permissions)."""
    everything = export(broker)
    return {"rabbit_version": RABBIT_VERSION, **{
        section: [{key: value for key, value in entry.items() if key != "vhost"}
                  for entry in everything[section] if entry["vhost"] == vhost]
        for section in VHOST_SECTIONS}}


def parse_vhost(document: Any, vhost: str, source: str = "definitions") -> Definitions:
    """Validate a per-vhost document (as `export_vhost` writes it) for importing into
    `vhost`: its policies, queues, exchanges, bindings and parameters, every entry put in
    `vhost` whatever it says; other sections (users, vhosts, permissions) are ignored,
    as RabbitMQ ignores them. Raises DefinitionsError."""
    if not isinstance(document, dict):
        return parse(document, source)
    scoped: dict[str, Any] = {"rabbit_version": document.get("rabbit_version")}
    for section in VHOST_SECTIONS:
        entries = document.get(section)
        scoped[section] = ([{**entry, "vhost": vhost} if isinstance(entry, dict) else entry
                            for entry in entries] if isinstance(entries, list) else entries)
    return parse(scoped, source)


def _policies(broker: Broker, operator: bool) -> list[dict[str, Any]]:
    """Every vhost's policies (or operator policies), sorted by vhost and name."""
    found: list[dict[str, Any]] = []
    for vhost_name in sorted(broker.vhosts):
        host = broker.vhosts[vhost_name]
        table = host.operator_policies if operator else host.policies
        found.extend(copy.deepcopy(table[name].to_json()) for name in sorted(table))
    return found


def _exported_exchange(exchange: Exchange) -> bool:
    return exchange.durable and bool(exchange.name) and not exchange.name.startswith(
        RESERVED_PREFIX)


def _bindable_exchange(exchange: Exchange) -> bool:
    """Exported, or one of the `amq.*` exchanges every vhost has."""
    return exchange.durable and bool(exchange.name)


def _exported_queue(queue: Queue) -> bool:
    return (queue.durable and queue.exclusive_owner is None
            and not queue.name.startswith(RESERVED_PREFIX))


def jsonable(value: Any) -> Any:
    """An argument value as JSON can hold it: bytes as text, timestamps as seconds,
    decimals as floats."""
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.UTC)
        return int(value.timestamp())
    if isinstance(value, Decimal):
        return float(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
