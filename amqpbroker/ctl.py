"""`amqpbroker ctl`: rabbitmqctl's habits, as a client of the management HTTP API.

It finds the broker at `--url` (or AMQPBROKER_MGMT_URL; default http://localhost:15672
with guest/guest). Lists print tab-separated with a header row, or as JSON with
`--formatter json`; every failure is one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.parse
from typing import Any

import click
import httpx

DEFAULT_URL = "http://guest:guest@localhost:15672"
LISTS = {
    "list_queues": ("queues", ["name", "messages"]),
    "list_exchanges": ("exchanges", ["name", "type"]),
    "list_bindings": ("bindings", ["source", "destination", "routing_key"]),
    "list_connections": ("connections", ["user", "peer_host", "peer_port", "state"]),
    "list_channels": ("channels", ["name", "user", "consumer_count",
                                   "messages_unacknowledged"]),
    "list_consumers": ("consumers", ["queue", "consumer_tag", "ack_required"]),
    "list_users": ("users", ["name", "tags"]),
    "list_vhosts": ("vhosts", ["name"]),
    "list_permissions": ("permissions", ["user", "configure", "write", "read"]),
    "list_policies": ("policies", ["vhost", "name", "pattern", "apply-to", "definition",
                                   "priority"]),
}


class Client:
    """The management API at one URL (credentials in the URL, as rabbitmqadmin's)."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        parts = urllib.parse.urlsplit(url)
        auth = (urllib.parse.unquote(parts.username or "guest"),
                urllib.parse.unquote(parts.password or "guest"))
        base = f"{parts.scheme or 'http'}://{parts.hostname or 'localhost'}:{parts.port or 15672}"
        self.http = httpx.Client(base_url=base, auth=auth, timeout=timeout)

    def call(self, method: str, path: str, body: Any = None,
             headers: dict[str, str] | None = None) -> Any:
        try:
            response = self.http.request(method, path, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise click.ClickException(f"cannot reach {self.http.base_url}: {exc}") from None
        if response.status_code >= 400:
            try:
                reason = response.json().get("reason", response.text)
            except ValueError:
                reason = response.text or response.reason_phrase
            raise click.ClickException(f"{method} {path}: {response.status_code} {reason}")
        return response.json() if response.content else None


def segment(name: str) -> str:
    """A name as one path segment (vhost `/` is `%2F`)."""
    return urllib.parse.quote(name, safe="")


def _print(rows: list[dict[str, Any]], columns: list[str], formatter: str) -> None:
    if formatter == "json":
        click.echo(json.dumps([{c: row.get(c) for c in columns} for row in rows], indent=2))
        return
    click.echo("\t".join(columns))
    for row in rows:
        click.echo("\t".join(_cell(row.get(column)) for column in columns))


def _cell(value: Any) -> str:
    if isinstance(value, dict):
        return value.get("name", json.dumps(value)) if "name" in value else json.dumps(value)
    if isinstance(value, list):
        return ",".join(map(str, value))
    return "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


@click.group()
@click.option("--url", envvar="AMQPBROKER_MGMT_URL", default=DEFAULT_URL, show_default=True,
              help="Management API URL, with credentials.")
@click.pass_context
def ctl(ctx: click.Context, url: str) -> None:
    """Manage a running broker through its HTTP API (rabbitmqctl's commands)."""
    ctx.obj = Client(url)


def _list_command(name: str, resource: str, default: list[str]) -> click.Command:
    @click.argument("columns", nargs=-1)
    @click.option("-p", "--vhost", default=None, help="Only this vhost.")
    @click.option("--formatter", type=click.Choice(["table", "json"]), default="table")
    @click.pass_obj
    def command(client: Client, columns: tuple[str, ...], vhost: str | None,
                formatter: str) -> None:
        path = f"/api/{resource}"
        if vhost and resource == "permissions":
            path = f"/api/vhosts/{segment(vhost)}/permissions"
        elif vhost and resource not in ("users", "vhosts"):
            path += f"/{segment(vhost)}"
        _print(client.call("GET", path), list(columns) or default, formatter)
    command.__doc__ = f"List {resource} (columns: any field of the API's objects)."
    return click.command(name)(command)


for _name, (_resource, _columns) in LISTS.items():
    ctl.add_command(_list_command(_name, _resource, _columns))

# Commands that DELETE one object: name -> (path with {vhost} and {name}, help, in a vhost?)
REMOVALS = {
    "delete_user": ("/api/users/{name}", "Delete a user (their connections are closed).",
                    False),
    "delete_vhost": ("/api/vhosts/{name}", "Delete a virtual host, its objects and "
                     "connections.", False),
    "clear_permissions": ("/api/permissions/{vhost}/{name}", "Remove a user's permissions "
                          "on a vhost.", True),
    "clear_policy": ("/api/policies/{vhost}/{name}", "Remove a policy.", True),
    "purge_queue": ("/api/queues/{vhost}/{name}/contents", "Drop a queue's ready messages.",
                    True),
    "delete_queue": ("/api/queues/{vhost}/{name}", "Delete a queue.", True),
}


def _removal_command(name: str, path: str, summary: str, in_vhost: bool) -> click.Command:
    @click.argument("target")
    @click.pass_obj
    def command(client: Client, target: str, vhost: str = "/") -> None:
        client.call("DELETE", path.format(vhost=segment(vhost), name=segment(target)))
    command.__doc__ = summary
    if in_vhost:
        command = click.option("-p", "--vhost", default="/")(command)
    return click.command(name)(command)


for _name, (_path, _summary, _in_vhost) in REMOVALS.items():
    ctl.add_command(_removal_command(_name, _path, _summary, _in_vhost))


@ctl.command("add_user")
@click.argument("name")
@click.argument("password")
@click.pass_obj
def add_user(client: Client, name: str, password: str) -> None:
    """Create a user (no tags)."""
    client.call("PUT", f"/api/users/{segment(name)}", {"password": password, "tags": ""})


@ctl.command("change_password")
@click.argument("name")
@click.argument("password")
@click.pass_obj
def change_password(client: Client, name: str, password: str) -> None:
    """Set a user's password (tags kept)."""
    user = client.call("GET", f"/api/users/{segment(name)}")
    client.call("PUT", f"/api/users/{segment(name)}",
                {"password": password, "tags": user["tags"]})


@ctl.command("set_user_tags")
@click.argument("name")
@click.argument("tags", nargs=-1)
@click.pass_obj
def set_user_tags(client: Client, name: str, tags: tuple[str, ...]) -> None:
    """Replace a user's tags."""
    client.call("PUT", f"/api/users/{segment(name)}", {"tags": list(tags)})


@ctl.command("add_vhost")
@click.argument("name")
@click.pass_obj
def add_vhost(client: Client, name: str) -> None:
    """Create a virtual host."""
    client.call("PUT", f"/api/vhosts/{segment(name)}", {})


@ctl.command("set_permissions")
@click.option("-p", "--vhost", default="/")
@click.argument("user")
@click.argument("configure")
@click.argument("write")
@click.argument("read")
@click.pass_obj
def set_permissions(client: Client, vhost: str, user: str, configure: str, write: str,
                    read: str) -> None:
    """Set a user's configure, write and read patterns on a vhost."""
    client.call("PUT", f"/api/permissions/{segment(vhost)}/{segment(user)}",
                {"configure": configure, "write": write, "read": read})


@ctl.command("set_policy")
@click.option("-p", "--vhost", default="/")
@click.option("--priority", type=int, default=0)
@click.option("--apply-to", default="all")
@click.argument("name")
@click.argument("pattern")
@click.argument("definition")
@click.pass_obj
def set_policy(client: Client, vhost: str, priority: int, apply_to: str, name: str,
               pattern: str, definition: str) -> None:
    """Set a policy: NAME PATTERN DEFINITION (JSON)."""
    try:
        parsed = json.loads(definition)
    except ValueError:
        raise click.ClickException(f"the definition is not JSON: {definition}") from None
    client.call("PUT", f"/api/policies/{segment(vhost)}/{segment(name)}",
                {"pattern": pattern, "definition": parsed, "priority": priority,
                 "apply-to": apply_to})


@ctl.command("close_connection")
@click.argument("name")
@click.argument("reason", default="Closed via amqpbroker ctl")
@click.pass_obj
def close_connection(client: Client, name: str, reason: str) -> None:
    """Close a connection (by its API name) with 320 and a reason."""
    client.call("DELETE", f"/api/connections/{segment(name)}", headers={"X-Reason": reason})


@ctl.command("export_definitions")
@click.argument("path")
@click.pass_obj
def export_definitions(client: Client, path: str) -> None:
    """Write the definitions as JSON to PATH ('-': standard output)."""
    text = json.dumps(client.call("GET", "/api/definitions"), indent=2) + "\n"
    if path == "-":
        sys.stdout.write(text)
        return
    with open(path, "w", encoding="utf-8") as file:
        file.write(text)


@ctl.command("import_definitions")
@click.argument("path", type=click.File("r", encoding="utf-8-sig"))
@click.pass_obj
def import_definitions(client: Client, path: Any) -> None:
    """Apply a definitions file (RabbitMQ's schema)."""
    try:
        document = json.load(path)
    except ValueError as exc:
        raise click.ClickException(f"{path.name}: not valid JSON ({exc})") from None
    client.call("POST", "/api/definitions", document)


@ctl.command("status")
@click.pass_obj
def status(client: Client) -> None:
    """Product, version, listeners and object totals."""
    overview = client.call("GET", "/api/overview")
    click.echo(f"{overview['product_name']} {overview['product_version']} on "
               f"{overview['node']}")
    for listener in overview["listeners"]:
        click.echo(f"listener: {listener['protocol']} {listener['ip_address']}:"
                   f"{listener['port']}")
    for name, count in sorted(overview["object_totals"].items()):
        click.echo(f"{name}: {count}")


@ctl.command("ping")
@click.pass_obj
def ping(client: Client) -> None:
    """Succeeds when the broker answers and has no alarm (container health checks)."""
    client.call("GET", "/api/health/checks/alarms")
    click.echo("Ping succeeded")


@ctl.command("await_startup")
@click.option("--timeout", type=float, default=30.0, show_default=True)
@click.pass_obj
def await_startup(client: Client, timeout: float) -> None:
    """Wait until the management API answers."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.call("GET", "/api/overview")
            return
        except click.ClickException as exc:
            if time.monotonic() >= deadline:
                raise click.ClickException(f"not started within {timeout:g}s: {exc}") from None
            time.sleep(0.1)
