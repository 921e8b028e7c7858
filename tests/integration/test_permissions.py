"""Users and permissions from a definitions file, seen by pika: vhost access at
Connection.Open, login refusals, and configure / write / read checks on every command."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import (
    ChannelClosedByBroker,
    ConnectionClosedByBroker,
    ProbableAccessDeniedError,
    ProbableAuthenticationError,
)

from amqpbroker.definitions import apply, load
from amqpbroker.testing import EmbeddedBroker, broker_in_thread

pytestmark = pytest.mark.timeout(30)

PASSWORD = "pw"
TIMEOUTS = {"socket_timeout": 5, "blocked_connection_timeout": 5, "stack_timeout": 5}
LOGIN_REFUSED = ("ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. "
                 "For details see the broker logfile.")
ALL = {"configure": ".*", "write": ".*", "read": ".*"}

# user -> vhost -> permission; every user's password is PASSWORD.
PERMISSIONS: dict[str, dict[str, dict[str, str]]] = {
    "admin": {"/": ALL, "v2": ALL},
    "outsider": {},
    "noconf": {"/": {**ALL, "configure": "^$"}},
    "nowrite": {"/": {**ALL, "write": "^$"}},
    "noread": {"/": {**ALL, "read": "^$"}},
    "binder": {"/": {"configure": "^$", "write": "^bq$", "read": "^bx$"}},
    "gen": {"/": {**ALL, "configure": "^amq\\.gen-.*"}},
    "v2only": {"v2": ALL},
}


def definitions() -> dict[str, Any]:
    queue_names = ["existing", "bq", "bq2"]
    return {
        "rabbit_version": "3.13.0",
        "vhosts": [{"name": "/"}, {"name": "v2"}],
        "users": [{"name": user, "password": PASSWORD, "tags": []} for user in PERMISSIONS],
        "permissions": [{"user": user, "vhost": vhost, **permission}
                        for user, vhosts in PERMISSIONS.items()
                        for vhost, permission in vhosts.items()],
        "exchanges": [{"name": name, "vhost": "/", "type": "direct", "durable": True,
                       "auto_delete": False, "internal": False, "arguments": {}}
                      for name in ("x", "bx", "other")],
        "queues": [{"name": name, "vhost": "/", "durable": True, "auto_delete": False,
                    "arguments": {}} for name in queue_names],
        "bindings": [],
    }


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    path = tmp_path_factory.mktemp("definitions") / "definitions.json"
    path.write_text(json.dumps(definitions()))
    with broker_in_thread() as running:
        model = running.server.broker
        running.call(lambda: apply(model, load(path)))
        yield running


Connect = Callable[..., pika.BlockingConnection]


@pytest.fixture
def connect(broker: EmbeddedBroker) -> Iterator[Connect]:
    """Opens pika connections as a given user; closes them after the test."""
    opened: list[pika.BlockingConnection] = []

    def open_connection(user: str, vhost: str = "/",
                        password: str = PASSWORD) -> pika.BlockingConnection:
        params = pika.ConnectionParameters(
            broker.host, broker.port, vhost, pika.PlainCredentials(user, password),
            connection_attempts=1, **TIMEOUTS)
        connection = pika.BlockingConnection(params)
        opened.append(connection)
        return connection

    yield open_connection
    for connection in opened:
        if connection.is_open:
            connection.close()


def refused(action: Callable[[], Any]) -> tuple[int, str]:
    """The reply code and text of the channel error `action` provokes."""
    with pytest.raises(ChannelClosedByBroker) as info:
        action()
    return info.value.reply_code, info.value.reply_text


def access(resource: str, name: str, user: str, vhost: str = "/") -> tuple[int, str]:
    return 403, (f"ACCESS_REFUSED - access to {resource} '{name}' in vhost '{vhost}' "
                 f"refused for user '{user}'")


def connection_refusal(info: pytest.ExceptionInfo[Exception]) -> tuple[int, str]:
    """(code, text) of a refused connection, whichever exception pika chose."""
    error = info.value
    if isinstance(error, ConnectionClosedByBroker):
        return error.reply_code, error.reply_text
    match = re.search(r"\((\d+)\) (['\"])(.*)\2", str(error))
    assert match, str(error)
    return int(match.group(1)), match.group(3)


# --- connecting ---------------------------------------------------------------------------


def test_user_without_permission_on_the_vhost_gets_530(connect: Connect):
    with pytest.raises((ProbableAccessDeniedError, ConnectionClosedByBroker)) as info:
        connect("outsider")
    assert connection_refusal(info) == (
        530, "NOT_ALLOWED - access to vhost '/' refused for user 'outsider'")


def test_user_with_permission_in_another_vhost_only(connect: Connect):
    connection = connect("v2only", "v2")
    channel = connection.channel()
    channel.queue_declare("in-v2", exclusive=True)
    with pytest.raises((ProbableAccessDeniedError, ConnectionClosedByBroker)) as info:
        connect("v2only", "/")
    assert connection_refusal(info) == (
        530, "NOT_ALLOWED - access to vhost '/' refused for user 'v2only'")
    assert connection.is_open


@pytest.mark.parametrize("user,password", [("admin", "wrong"), ("nobody", PASSWORD)])
def test_wrong_password_and_unknown_user_get_the_same_403(connect: Connect, user: str,
                                                          password: str):
    with pytest.raises((ProbableAuthenticationError, ConnectionClosedByBroker)) as info:
        connect(user, password=password)
    assert connection_refusal(info) == (403, LOGIN_REFUSED)
    connect("admin").close()  # the broker still serves good clients


# --- configure ------------------------------------------------------------------------------


def test_declare_needs_configure(connect: Connect):
    connection = connect("noconf")
    channel = connection.channel()
    assert refused(lambda: channel.queue_declare("q")) == access("queue", "q", "noconf")
    assert channel.is_closed and connection.is_open
    channel = connection.channel()
    assert refused(lambda: channel.exchange_declare("ex", "fanout")) == access(
        "exchange", "ex", "noconf")
    # The connection is still usable; passive declares need no permission.
    channel = connection.channel()
    assert channel.queue_declare("existing", passive=True).method.queue == "existing"
    channel.exchange_declare("x", passive=True)
    assert refused(lambda: channel.queue_delete("existing")) == access(
        "queue", "existing", "noconf")


def test_server_named_queue_is_checked_under_its_generated_name(connect: Connect):
    channel = connect("gen").channel()
    name = channel.queue_declare("", exclusive=True).method.queue
    assert re.fullmatch(r"amq\.gen-[A-Za-z0-9_-]{22}", name)
    assert refused(lambda: channel.queue_declare("named")) == access("queue", "named", "gen")

    channel = connect("noconf").channel()
    code, text = refused(lambda: channel.queue_declare("", exclusive=True))
    assert code == 403
    assert re.fullmatch(r"ACCESS_REFUSED - access to queue 'amq\.gen-[A-Za-z0-9_-]{22}' in "
                        r"vhost '/' refused for user 'noconf'", text), text


# --- write -------------------------------------------------------------------------------


def _publish(channel: BlockingChannel, exchange: str, routing_key: str) -> None:
    channel.basic_publish(exchange, routing_key, b"body")
    channel.queue_declare("existing", passive=True)  # a round trip: the refusal arrives


def test_publish_needs_write_on_the_exchange(connect: Connect):
    connection = connect("nowrite")
    channel = connection.channel()
    assert refused(lambda: _publish(channel, "", "existing")) == access(
        "exchange", "amq.default", "nowrite")
    channel = connection.channel()
    assert refused(lambda: _publish(channel, "x", "k")) == access("exchange", "x", "nowrite")
    channel = connection.channel()
    channel.confirm_delivery()
    assert refused(lambda: channel.basic_publish("amq.direct", "k", b"body")) == access(
        "exchange", "amq.direct", "nowrite")
    assert connection.is_open


def test_publish_with_write_permission(connect: Connect):
    channel = connect("noread").channel()
    channel.confirm_delivery()
    channel.basic_publish("", "existing", b"kept")
    reader = connect("admin").channel()
    method, _, body = reader.basic_get("existing", auto_ack=True)
    assert method is not None and body == b"kept"


# --- read --------------------------------------------------------------------------------


def test_get_and_consume_need_read_on_the_queue(connect: Connect):
    connection = connect("noread")
    channel = connection.channel()
    assert refused(lambda: channel.basic_get("existing")) == access(
        "queue", "existing", "noread")
    channel = connection.channel()
    assert refused(lambda: channel.basic_consume("existing", lambda *args: None)) == access(
        "queue", "existing", "noread")
    channel = connection.channel()
    assert refused(lambda: channel.queue_purge("existing")) == access(
        "queue", "existing", "noread")
    assert connection.is_open


# --- bind ---------------------------------------------------------------------------------


def test_bind_needs_write_on_the_queue_and_read_on_the_exchange(connect: Connect):
    connection = connect("binder")
    channel = connection.channel()
    channel.queue_bind("bq", "bx", "k")
    channel.queue_unbind("bq", "bx", "k")
    assert refused(lambda: channel.queue_bind("bq2", "bx", "k")) == access(
        "queue", "bq2", "binder")
    channel = connection.channel()
    assert refused(lambda: channel.queue_bind("bq", "other", "k")) == access(
        "exchange", "other", "binder")
    channel = connection.channel()
    # Exchange-to-exchange: write on the destination, read on the source.
    assert refused(lambda: channel.exchange_bind("other", "bx", "k")) == access(
        "exchange", "other", "binder")
    assert connection.is_open
