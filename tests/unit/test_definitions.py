"""Unit tests for definitions files: parsing RabbitMQ's schema, applying it to a broker,
the error messages that name the entry at fault, export and round trips."""

from __future__ import annotations

import copy
import datetime
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from helpers import RecordingSink

from amqpbroker.broker.access import hash_password
from amqpbroker.broker.broker import Broker
from amqpbroker.broker.exchange import Exchange
from amqpbroker.broker.recovery import recover
from amqpbroker.definitions import DefinitionsError, apply, export, load, parse
from amqpbroker.store.sqlite import SqliteStore

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "definitions.example.json"
SOURCE = "definitions.json"

# Hashes as RabbitMQ writes them, with the passwords they were made from.
GUEST_HASH = "BMfxN8drrYcIqXZMr+pWTpDT0nMcOagMduLX0bjr4jwud/pN"  # RabbitMQ's 'guest'
RABBIT_HASHES = [
    ("guest", "rabbit_password_hashing_sha256", "04C7F137", GUEST_HASH),
    # The worked examples of RabbitMQ's "Credentials and Passwords" guide.
    ("test12", "rabbit_password_hashing_sha256", "908DC60A",
     "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR"),
    ("simon", "rabbit_password_hashing_md5", "CAD5089B", "ytUIm8s3AnKsXQjptplKFytfVxI="),
]


def minimal() -> dict[str, Any]:
    """A small valid document: one vhost, user, permission, exchange, queue, binding."""
    return {
        "rabbit_version": "3.13.0",
        "users": [{"name": "u", "password_hash": GUEST_HASH,
                   "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": []}],
        "vhosts": [{"name": "/"}],
        "permissions": [{"user": "u", "vhost": "/", "configure": ".*", "write": ".*",
                         "read": ".*"}],
        "exchanges": [{"name": "x", "vhost": "/", "type": "direct", "durable": True,
                       "auto_delete": False, "internal": False, "arguments": {}}],
        "queues": [{"name": "q", "vhost": "/", "durable": True, "auto_delete": False,
                    "arguments": {}}],
        "bindings": [{"source": "x", "vhost": "/", "destination": "q",
                      "destination_type": "queue", "routing_key": "k", "arguments": {}}],
    }


def write(tmp_path: Path, content: Any, name: str = SOURCE) -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


# --- the example file -------------------------------------------------------------------


def test_example_file_loads_and_applies():
    definitions = load(EXAMPLE)
    broker = Broker()
    apply(broker, definitions)

    assert set(broker.vhosts) == {"/", "orders"}
    access = broker.access
    assert access.authenticate("guest", "guest", loopback=True) is not None
    assert access.authenticate("orders-service", "test12", loopback=False) is not None
    monitor = access.authenticate("monitor", "change-me", loopback=False)
    assert monitor is not None and monitor.tags == ["monitoring", "management"]
    assert access.users["guest"].tags == ["administrator"]

    service = access.permission("orders-service", "orders")
    assert service.allows("configure", "orders.new")
    assert service.allows("configure", "amq.gen-abc")
    assert not service.allows("configure", "billing")
    assert service.allows("write", "orders.events") and not service.allows("write", "x")
    monitor_permission = access.permission("monitor", "orders")
    assert not monitor_permission.allows("configure", "orders.created")
    assert monitor_permission.allows("read", "anything")

    orders = broker.vhosts["orders"]
    events = orders.exchanges["orders.events"]
    assert (events.type, events.durable, events.alternate) == ("topic", True, "orders.unrouted")
    created = orders.queues["orders.created"]
    assert (created.queue_type, created.dead_letter_exchange) == ("quorum", "orders.dlx")
    assert orders.queues["orders.audit"].max_length == 100000
    # The 'ttl' policy (600 s) matches every orders.* queue; the smaller TTL wins.
    assert orders.queues["orders.dead"].message_ttl == 600.0
    assert orders.queues["orders.dead"].policy is orders.policies["ttl"]
    routes = {(destination.name, key) for destination, key, _ in events.bindings}
    assert routes == {("orders.created", "order.created"), ("orders.audit", "#")}
    topic = orders.exchanges["amq.topic"]
    assert [(d.name, key) for d, key, _ in topic.bindings] == [("orders.events", "order.*")]
    assert isinstance(next(iter(topic.bindings))[0], Exchange)

    assert definitions.ignored == {"parameters": 0, "global_parameters": 1}
    assert "1 policies, 0 operator policies; ignored: 1 global_parameters" in (
        definitions.summary())
    assert definitions.rabbit_version == "3.13.0"


def test_applying_twice_changes_nothing():
    definitions = load(EXAMPLE)
    broker = Broker()
    apply(broker, definitions)
    first = export(broker)
    apply(broker, definitions)
    assert export(broker) == first


def test_applying_on_top_of_recovered_durable_state(tmp_path: Path):
    """At every start: recovered durable topology first, then the same file again."""
    definitions = load(EXAMPLE)

    def no_messages(*args: Any) -> Any:
        raise AssertionError("no messages were stored")

    store = SqliteStore(str(tmp_path))
    broker = Broker(store=store)
    recover(broker, store.load(), no_messages)
    apply(broker, definitions)
    assert store.pending
    store.write_batch(store.take_batch())
    first = export(broker)
    store.close()

    store = SqliteStore(str(tmp_path))
    restarted = Broker(store=store)
    recover(restarted, store.load(), no_messages)
    assert "orders.created" in restarted.vhosts["orders"].queues
    apply(restarted, definitions)
    assert not store.pending  # nothing new to write
    assert export(restarted) == first
    store.close()


# --- password hashes --------------------------------------------------------------------


@pytest.mark.parametrize("password,algorithm,salt,expected", RABBIT_HASHES)
def test_rabbitmq_password_hashes(password: str, algorithm: str, salt: str, expected: str):
    assert hash_password(password, algorithm, bytes.fromhex(salt)) == expected
    document = {"users": [{"name": "someone", "password_hash": expected,
                           "hashing_algorithm": algorithm, "tags": "administrator"}],
                "permissions": [{"user": "someone", "vhost": "/", "configure": ".*",
                                 "write": ".*", "read": ".*"}]}
    broker = Broker()
    apply(broker, parse(document))
    access = broker.access
    assert access.authenticate("someone", password, loopback=False) is not None
    assert access.authenticate("someone", password + "x", loopback=False) is None
    assert access.users["someone"].tags == ["administrator"]


def test_sha512_hashes_and_plain_passwords():
    salted = hash_password("s3cret", "rabbit_password_hashing_sha512", b"\x01\x02\x03\x04")
    document = {"users": [
        {"name": "a", "password_hash": salted,
         "hashing_algorithm": "rabbit_password_hashing_sha512"},
        {"name": "b", "password": "plain", "hashing_algorithm": "rabbit_password_hashing_md5"},
        {"name": "c", "password": "plain"},
        {"name": "nologin", "password_hash": ""},
    ]}
    definitions = parse(document)
    broker = Broker()
    apply(broker, definitions)
    access = broker.access
    assert access.authenticate("a", "s3cret", loopback=False) is not None
    assert access.authenticate("b", "plain", loopback=False) is not None
    assert access.users["b"].hashing_algorithm == "rabbit_password_hashing_md5"
    assert access.authenticate("c", "plain", loopback=False) is not None
    assert access.users["c"].password_hash != "plain"
    assert access.authenticate("nologin", "", loopback=True) is None
    # A plain password is hashed once, when loaded: applying again keeps the hash.
    before = access.users["c"].password_hash
    apply(broker, definitions)
    assert access.users["c"].password_hash == before


def test_guest_may_only_connect_from_loopback():
    broker = Broker()
    assert broker.access.authenticate("guest", "guest", loopback=False) is None
    assert broker.access.authenticate("guest", "guest", loopback=True) is not None
    # Also when guest comes from a definitions file; other users are not restricted.
    apply(broker, parse({"users": [{"name": "guest", "password_hash": GUEST_HASH},
                                   {"name": "admin", "password": "guest"}]}))
    assert broker.access.authenticate("guest", "guest", loopback=False) is None
    assert broker.access.authenticate("guest", "guest", loopback=True) is not None
    assert broker.access.authenticate("admin", "guest", loopback=False) is not None


# --- what is skipped ----------------------------------------------------------------------


def test_reserved_and_default_names_are_skipped_as_rabbitmq_does():
    document = minimal()
    document["exchanges"] += [
        {"name": "amq.direct", "vhost": "/", "type": "direct"},
        {"name": "", "vhost": "/", "type": "direct"},
        {"name": "amq.custom", "vhost": "/", "type": "fanout"},
    ]
    document["queues"].append({"name": "amq.gen-abc", "vhost": "/"})
    definitions = parse(document, SOURCE)
    assert definitions.skipped == [
        "exchanges[1] (exchange 'amq.direct' in vhost '/')",
        "exchanges[2] (exchange '' in vhost '/')",
        "exchanges[3] (exchange 'amq.custom' in vhost '/')",
        "queues[1] (queue 'amq.gen-abc' in vhost '/')",
    ]
    broker = Broker()
    apply(broker, definitions)
    host = broker.vhosts["/"]
    assert "amq.custom" not in host.exchanges and "amq.gen-abc" not in host.queues
    assert "skipped: exchanges[1]" in definitions.summary()


def test_defaults_for_omitted_fields():
    document = {
        "exchanges": [{"name": "x", "vhost": "/", "type": "fanout"}],
        "queues": [{"name": "q", "vhost": "/"}],
        "bindings": [{"source": "x", "vhost": "/", "destination": "q",
                      "destination_type": "queue"}],
    }
    broker = Broker()
    apply(broker, parse(document))
    host = broker.vhosts["/"]
    exchange, queue = host.exchanges["x"], host.queues["q"]
    assert (exchange.durable, exchange.auto_delete, exchange.internal) == (True, False, False)
    assert (queue.durable, queue.auto_delete, queue.arguments) == (True, False, {})
    assert list(exchange.bindings) == [(queue, "", ())]


# --- errors name the entry ------------------------------------------------------------


def _change(path: str, value: Any) -> Any:
    """A function that sets `section.index.key` (or `section.index`) in a document."""

    def edit(document: dict[str, Any]) -> None:
        section, index, *key = path.split(".")
        entries = document.setdefault(section, [])
        while len(entries) <= int(index):
            entries.append(copy.deepcopy(entries[-1]))
        if key:
            if value is _DELETE:
                del entries[int(index)][key[0]]
            else:
                entries[int(index)][key[0]] = value
        else:
            entries[int(index)] = value

    return edit


_DELETE = object()
QUEUE_2 = "queues[2] (queue 'q' in vhost '/')"

PARSE_ERRORS = [
    # the example of the brief, for the third queue
    (_change("queues.2.durable", "yes"), f"{QUEUE_2}: 'durable' must be true or false"),
    (_change("queues.2.auto_delete", 0), f"{QUEUE_2}: 'auto_delete' must be true or false"),
    (_change("queues.2.arguments", "none"),
     f"{QUEUE_2}: 'arguments' must be an object, not a string"),
    (_change("queues.2.arguments", {"x-max-length": 2**64}),
     f"{QUEUE_2}: arguments['x-max-length'] is out of range for a 64-bit integer"),
    (_change("queues.0.name", _DELETE), "queues[0]: 'name' is missing"),
    (_change("queues.0.name", ""), "queues[0]: 'name' must not be empty"),
    (_change("queues.0.name", 7), "queues[0]: 'name' must be a string, not a number"),
    (_change("queues.0.name", "q" * 256), "queues[0]: 'name' is longer than 255 bytes"),
    (_change("queues.0.vhost", _DELETE), "queues[0] (queue 'q'): 'vhost' is missing"),
    (_change("queues.1", ["q"]), "queues[1]: must be an object, not a list"),
    (_change("exchanges.0.type", "fancy"),
     "exchanges[0] (exchange 'x' in vhost '/'): unknown exchange type 'fancy' (expected one "
     "of direct, fanout, headers, topic, x-delayed-message)"),
    (_change("exchanges.0.type", _DELETE),
     "exchanges[0] (exchange 'x' in vhost '/'): 'type' is missing"),
    (_change("exchanges.0.internal", "false"),
     "exchanges[0] (exchange 'x' in vhost '/'): 'internal' must be true or false"),
    (_change("users.0.password_hash", _DELETE),
     "users[0] (user 'u'): 'password_hash' is missing (or give a plain 'password')"),
    (_change("users.0.password_hash", "not base64!"),
     "users[0] (user 'u'): 'password_hash' is not a rabbit_password_hashing_sha256 hash "
     "(base64 of 36 bytes: a 4-byte salt and the digest)"),
    (_change("users.0.hashing_algorithm", "rabbit_password_hashing_sha512"),
     "users[0] (user 'u'): 'password_hash' is not a rabbit_password_hashing_sha512 hash "
     "(base64 of 68 bytes: a 4-byte salt and the digest)"),
    (_change("users.0.hashing_algorithm", "bcrypt"),
     "users[0] (user 'u'): unknown 'hashing_algorithm' 'bcrypt' (expected one of "
     "rabbit_password_hashing_sha256, rabbit_password_hashing_sha512, "
     "rabbit_password_hashing_md5)"),
    (_change("users.0.password", "pw"),
     "users[0] (user 'u'): give either 'password' or 'password_hash', not both"),
    (_change("users.0.tags", [1]),
     "users[0] (user 'u'): 'tags' must be a list of strings or a comma-separated string"),
    (_change("users.0.name", None), "users[0]: 'name' must be a string, not null"),
    (_change("vhosts.0.name", _DELETE), "vhosts[0]: 'name' is missing"),
    (_change("permissions.0.configure", "("),
     "permissions[0] (user 'u' in vhost '/'): 'configure' is not a valid regular "
     "expression (missing ), unterminated subpattern at position 0)"),
    (_change("permissions.0.read", _DELETE),
     "permissions[0] (user 'u' in vhost '/'): 'read' is missing"),
    (_change("bindings.0.destination_type", "topic"),
     "bindings[0]: 'destination_type' must be 'queue' or 'exchange', not 'topic'"),
    (_change("bindings.0.source", ""),
     "bindings[0] (binding of exchange '' to queue 'q' in vhost '/'): the default exchange "
     "cannot be bound"),
    (_change("bindings.0.routing_key", 5),
     "bindings[0] (binding of exchange 'x' to queue 'q' in vhost '/'): 'routing_key' must "
     "be a string, not a number"),
]


@pytest.mark.parametrize("edit,message", PARSE_ERRORS)
def test_parse_errors_name_the_entry(edit: Any, message: str):
    document = minimal()
    document["queues"] += [{"name": "q1", "vhost": "/"}, {"name": "q", "vhost": "/"}]
    edit(document)
    with pytest.raises(DefinitionsError) as info:
        parse(document, SOURCE)
    assert str(info.value) == f"{SOURCE}: {message}"


@pytest.mark.parametrize("document,message", [
    ([], "the top level must be a JSON object, not a list"),
    ("text", "the top level must be a JSON object, not a string"),
    ({"queues": {}}, "'queues' must be a list, not an object"),
    ({"policies": "none"}, "'policies' must be a list, not a string"),
])
def test_document_shape_errors(document: Any, message: str):
    with pytest.raises(DefinitionsError) as info:
        parse(document, SOURCE)
    assert str(info.value) == f"{SOURCE}: {message}"


def test_unreadable_json_names_line_and_column(tmp_path: Path):
    path = write(tmp_path, '{\n  "users": [,]\n}\n')
    with pytest.raises(DefinitionsError) as info:
        load(path)
    assert str(info.value) == f"{path}: not valid JSON: Expecting value at line 2, column 13"


def test_missing_file(tmp_path: Path):
    path = tmp_path / "nope.json"
    with pytest.raises(DefinitionsError) as info:
        load(path)
    assert str(info.value) == f"{path}: cannot read the file (No such file or directory)"


def test_load_names_the_file(tmp_path: Path):
    document = minimal()
    document["queues"][0]["durable"] = "yes"
    path = write(tmp_path, document)
    with pytest.raises(DefinitionsError) as info:
        load(path)
    assert str(info.value) == (
        f"{path}: queues[0] (queue 'q' in vhost '/'): 'durable' must be true or false")
    assert info.value.where == "queues[0] (queue 'q' in vhost '/')"


APPLY_ERRORS = [
    (_change("queues.0.vhost", "nope"),
     "queues[0] (queue 'q' in vhost 'nope'): unknown vhost 'nope' (not in 'vhosts' and not "
     "on the broker)"),
    (_change("exchanges.0.vhost", "nope"),
     "exchanges[0] (exchange 'x' in vhost 'nope'): unknown vhost 'nope' (not in 'vhosts' "
     "and not on the broker)"),
    (_change("permissions.0.vhost", "nope"),
     "permissions[0] (user 'u' in vhost 'nope'): unknown vhost 'nope' (not in 'vhosts' and "
     "not on the broker)"),
    (_change("permissions.0.user", "stranger"),
     "permissions[0] (user 'stranger' in vhost '/'): unknown user 'stranger' (not in "
     "'users' and not on the broker)"),
    (_change("bindings.0.source", "missing"),
     "bindings[0] (binding of exchange 'missing' to queue 'q' in vhost '/'): no exchange "
     "'missing' in vhost '/' (not in 'exchanges' and not on the broker)"),
    (_change("bindings.0.destination", "missing"),
     "bindings[0] (binding of exchange 'x' to queue 'missing' in vhost '/'): no queue "
     "'missing' in vhost '/' (not in 'queues' and not on the broker)"),
    (_change("bindings.1", {"source": "x", "vhost": "/", "destination": "y",
                            "destination_type": "exchange"}),
     "bindings[1] (binding of exchange 'x' to exchange 'y' in vhost '/'): no exchange 'y' "
     "in vhost '/' (not in 'exchanges' and not on the broker)"),
    (_change("queues.0.arguments", {"x-max-length": -1}),
     "queues[0] (queue 'q' in vhost '/'): PRECONDITION_FAILED - invalid arg 'x-max-length' "
     "for queue 'q' in vhost '/': {value_negative,-1}"),
    (_change("queues.0.auto_delete", True), None),  # control: a valid document
    (_change("queues.0.arguments", {"x-expires": 0}),
     "queues[0] (queue 'q' in vhost '/'): PRECONDITION_FAILED - invalid arg 'x-expires' "
     "for queue 'q' in vhost '/': {value_zero,0}"),
]


@pytest.mark.parametrize("edit,message", APPLY_ERRORS)
def test_apply_errors_name_the_entry_and_change_nothing(edit: Any, message: str | None):
    document = minimal()
    document["vhosts"].append({"name": "new"})
    edit(document)
    definitions = parse(document, SOURCE)
    broker = Broker()
    if message is None:
        apply(broker, definitions)
        return
    with pytest.raises(DefinitionsError) as info:
        apply(broker, definitions)
    assert str(info.value) == f"{SOURCE}: {message}"
    # Checked before anything changed.
    assert "new" not in broker.vhosts and "u" not in broker.access.users
    assert "x" not in broker.vhosts["/"].exchanges


def test_conflicts_with_the_broker_are_reported_with_its_reply_text():
    broker = Broker()
    broker.vhosts["/"].declare_queue(None, "q", False, False, False, False, {})
    with pytest.raises(DefinitionsError) as info:
        apply(broker, parse(minimal(), SOURCE))
    assert str(info.value) == (
        f"{SOURCE}: queues[0] (queue 'q' in vhost '/'): PRECONDITION_FAILED - inequivalent "
        "arg 'durable' for queue 'q' in vhost '/': received 'true' but current is 'false'")


def test_declare_errors_are_converted():
    document = {"exchanges": [{"name": "d", "vhost": "/", "type": "x-delayed-message"}]}
    with pytest.raises(DefinitionsError) as info:
        apply(Broker(), parse(document, SOURCE))
    assert str(info.value) == (
        f"{SOURCE}: exchanges[0] (exchange 'd' in vhost '/'): PRECONDITION_FAILED - Invalid "
        "argument, 'x-delayed-type' must be an existing exchange type")


def test_bind_errors_are_converted():
    document = minimal()
    document["exchanges"][0]["type"] = "headers"
    document["bindings"][0]["arguments"] = {"x-match": "some"}
    with pytest.raises(DefinitionsError) as info:
        apply(Broker(), parse(document, SOURCE))
    assert str(info.value) == (
        f"{SOURCE}: bindings[0] (binding of exchange 'x' to queue 'q' in vhost '/'): "
        "PRECONDITION_FAILED - Invalid x-match field value <<\"some\">>; expected all, any, "
        "all-with-x, or any-with-x")


# --- export and round trip --------------------------------------------------------------


def populated() -> Broker:
    """A broker with something of everything export must handle or leave out."""
    broker = Broker()
    broker.access.add_user("app", "secret", tags=["management", "policymaker"])
    broker.access.add_user("sha512", "pw", hashing_algorithm="rabbit_password_hashing_sha512")
    v2 = broker.add_vhost("v2")
    broker.access.set_permission("app", "v2", "^app\\.", "^app\\.", ".*")
    broker.access.set_permission("app", "/", "", "^$", "^amq\\.gen-.*")
    host = broker.vhosts["/"]
    host.declare_exchange("events", "topic", False, True, False, False,
                          {"alternate-exchange": "unrouted"})
    host.declare_exchange("unrouted", "fanout", False, True, False, False, {})
    host.declare_exchange("match", "headers", False, True, True, False, {})
    host.declare_exchange("hidden", "direct", False, True, False, True, {})
    host.declare_exchange("later", "x-delayed-message", False, True, False, False,
                          {"x-delayed-type": "direct"})
    host.declare_exchange("transient", "direct", False, False, False, False, {})
    when = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.UTC)
    host.declare_queue(None, "orders", False, True, False, False, {
        "x-message-ttl": 60000, "x-dead-letter-exchange": "unrouted",
        "x-queue-type": "classic", "custom-bytes": b"raw", "custom-when": when,
        "custom-decimal": Decimal("1.5"), "custom-table": {"a": [1, b"b", True]}})
    host.declare_queue(None, "quorum", False, True, False, False, {"x-queue-type": "quorum"})
    host.declare_queue(None, "temp", False, False, False, False, {})
    server_named = host.declare_queue(None, "", False, True, False, False, {})
    session = broker.open_session("/", "guest", RecordingSink(), cancel_notify=True)
    assert session is not None
    host.declare_queue(session, "mine", False, True, True, False, {})
    host.bind_queue(None, "orders", "events", "order.#", {})
    host.bind_queue(None, "orders", "unrouted", "", {})
    host.bind_queue(None, "quorum", "match", "", {"x-match": "any", "kind": b"a", "n": 1})
    host.bind_queue(None, "quorum", "amq.direct", "q", {})
    host.bind_exchange("events", "amq.topic", "#", {})
    host.bind_exchange("hidden", "events", "internal.*", {})
    host.bind_queue(None, "temp", "events", "t", {})  # non-durable queue: left out
    host.bind_queue(None, "orders", "transient", "t", {})  # non-durable exchange: left out
    host.bind_queue(None, server_named.name, "events", "s", {})  # amq.* queue: left out
    host.bind_queue(session, "mine", "events", "m", {})  # exclusive queue: left out
    v2.declare_queue(None, "app.q", False, True, False, True, {})
    return broker


def test_export_schema():
    exported = export(populated())
    json.dumps(exported)  # serialisable
    assert exported["rabbit_version"] == "3.13.0"
    users = {user["name"]: user for user in exported["users"]}
    assert set(users) == {"guest", "app", "sha512"}
    assert users["app"]["tags"] == ["management", "policymaker"]
    assert users["app"]["hashing_algorithm"] == "rabbit_password_hashing_sha256"
    assert users["sha512"]["hashing_algorithm"] == "rabbit_password_hashing_sha512"
    assert [vhost["name"] for vhost in exported["vhosts"]] == ["/", "v2"]
    assert {"user": "app", "vhost": "v2", "configure": "^app\\.", "write": "^app\\.",
            "read": ".*"} in exported["permissions"]
    exchanges = {(x["vhost"], x["name"]): x for x in exported["exchanges"]}
    assert set(exchanges) == {("/", "events"), ("/", "unrouted"), ("/", "match"),
                              ("/", "hidden"), ("/", "later")}
    assert exchanges[("/", "hidden")]["internal"] is True
    assert exchanges[("/", "match")]["auto_delete"] is True
    assert exchanges[("/", "later")]["arguments"] == {"x-delayed-type": "direct"}
    queues = {(q["vhost"], q["name"]): q for q in exported["queues"]}
    assert set(queues) == {("/", "orders"), ("/", "quorum"), ("v2", "app.q")}
    arguments = queues[("/", "orders")]["arguments"]
    assert arguments["custom-bytes"] == "raw"
    assert arguments["custom-when"] == 1714564800
    assert arguments["custom-decimal"] == 1.5
    assert arguments["custom-table"] == {"a": [1, "b", True]}
    bindings = {(b["source"], b["destination_type"], b["destination"], b["routing_key"])
                for b in exported["bindings"]}
    assert bindings == {
        ("events", "queue", "orders", "order.#"), ("unrouted", "queue", "orders", ""),
        ("match", "queue", "quorum", ""), ("amq.direct", "queue", "quorum", "q"),
        ("amq.topic", "exchange", "events", "#"), ("events", "exchange", "hidden", "internal.*"),
    }
    headers = next(b for b in exported["bindings"] if b["source"] == "match")
    assert headers["arguments"] == {"x-match": "any", "kind": "a", "n": 1}


def test_round_trip_onto_a_fresh_broker(tmp_path: Path):
    exported = export(populated())
    path = write(tmp_path, exported)
    fresh = Broker()
    apply(fresh, load(path))
    assert export(fresh) == exported
    # And the users work on the fresh broker.
    assert fresh.access.authenticate("app", "secret", loopback=False) is not None
    assert fresh.access.authenticate("sha512", "pw", loopback=False) is not None
