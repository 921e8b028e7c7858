"""The management web console in a real headless Chromium driven by selenium, against a
broker (in a thread) serving its management port on an ephemeral loopback port: login and
a bad login, the overview's totals, a queue created, published to, read, purged and
deleted from the pages, filtering and paging, a refresh that keeps what is typed, a real
client's connection and channel listed and its connection closed (from its page and from
the list), names with markup and slashes shown as text and linked, an exchange publishing
by routing key, the admin pages, definitions export and import, logout, and no script
error on the way.

One browser and one broker serve the whole module; each test uses names of its own."""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pika
import pytest
from support.processes import free_port, wait_for

from amqpbroker.testing import EmbeddedBroker, broker_in_thread

CHROMIUM = next((found for name in ("chromium", "chromium-browser", "google-chrome")
                 if (found := shutil.which(name))), None)
CHROMEDRIVER = shutil.which("chromedriver")
if CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip("chromium and chromedriver not found: the console's browser tests need both "
                "(apt-get install chromium chromium-driver, or `make test` as root)",
                allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")

from selenium.common.exceptions import (  # noqa: E402
    ElementNotInteractableException,
    NoSuchElementException,
    StaleElementReferenceException,
)
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

pytestmark = pytest.mark.timeout(60)
GUEST = ("guest", "guest")
WAIT = 10.0  # seconds: more than one 5 s refresh of the page


class Console:
    """The browser on the console of one broker, and that broker's API for checks."""

    def __init__(self, driver: WebDriver, broker: EmbeddedBroker, url: str,
                 downloads: Path) -> None:
        self.driver, self.broker, self.url, self.downloads = driver, broker, url, downloads
        self.api = httpx.Client(base_url=url, auth=GUEST, timeout=10)

    def until(self, condition: Callable[[WebDriver], Any], timeout: float = WAIT) -> Any:
        return WebDriverWait(self.driver, timeout, poll_frequency=0.05,
                             ignored_exceptions=(NoSuchElementException,
                                                 StaleElementReferenceException)
                             ).until(condition)

    def find(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def finds(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def shown(self, css: str) -> str | None:
        """The rendered text of the element, None if there is none (one round trip)."""
        return self.driver.execute_script(  # type: ignore[no-any-return]
            "const e = document.querySelector(arguments[0]); return e ? e.innerText : null",
            css)

    def has(self, css: str) -> bool:
        return self.shown(css) is not None

    def names(self, css: str) -> list[str]:
        """The `data-name` of every element `css` selects."""
        return self.driver.execute_script(  # type: ignore[no-any-return]
            "return [...document.querySelectorAll(arguments[0])].map(e => e.dataset.name)", css)

    def text(self, css: str, expected: str) -> None:
        """Wait until the element's text is `expected`."""
        self.until(lambda d: (self.shown(css) or "").strip() == expected)

    def contains(self, css: str, expected: str) -> None:
        self.until(lambda d: expected in (self.shown(css) or ""))

    def click(self, css: str) -> None:
        """Click the element once the page shows it (again if a refresh redrew it)."""
        def clicked(_: WebDriver) -> bool:
            try:
                self.find(css).click()
            except ElementNotInteractableException:
                return False
            return True
        self.until(clicked)

    def go(self, fragment: str) -> None:
        """Show a view (`#/queues`), drawn afresh even if it is the one shown, and wait
        until it shows the API's figures."""
        self.driver.execute_script(
            "if (location.hash === arguments[0]) "
            "window.dispatchEvent(new HashChangeEvent('hashchange'));"
            "else location.hash = arguments[0];", fragment)
        self.until(lambda d: d.execute_script(
            "const m = document.getElementById('main');"
            "return m.dataset.view === arguments[0] && m.dataset.refreshed === 'yes'",
            fragment))

    def fill(self, form: str, **fields: str | bool) -> None:
        """Set the form's fields as a user would leave them (input and change events
        fired); a select must offer the value, a checkbox takes a bool. One round trip
        for the whole form."""
        self.until(lambda d: self.has(form))
        self.driver.execute_script("""
            const form = document.querySelector(arguments[0]);
            for (const [name, value] of Object.entries(arguments[1])) {
              const field = form.querySelector(`[name="${name}"]`);
              if (!field) throw new Error(`no field ${name}`);
              if (field.type === 'checkbox') field.checked = value;
              else field.value = value;
              if (field.type !== 'checkbox' && field.value !== value) {
                throw new Error(`${name} cannot be ${value}`);
              }
              field.dispatchEvent(new Event('input', {bubbles: true}));
              field.dispatchEvent(new Event('change', {bubbles: true}));
            }""", form, fields)

    def submit(self, form: str, **fields: str | bool) -> None:
        self.fill(form, **fields)
        self.find(f'{form} button[type="submit"]').click()

    def accept(self) -> None:
        """Accept the confirm() a destructive action asks."""
        self.until(expected_conditions.alert_is_present()).accept()

    def logged_in(self) -> bool:
        return bool(self.driver.execute_script(
            "return !document.getElementById('app').hidden"))

    def login(self, user: str = "guest", password: str = "guest") -> None:
        """Type the credentials into the login form and press Enter."""
        for name, value in (("username", user), ("password", password)):
            field = self.find(f'form[name="login"] [name="{name}"]')
            field.clear()
            field.send_keys(value)
        field.send_keys(Keys.ENTER)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    downloads = tmp_path_factory.mktemp("downloads")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1280,900", "--disable-gpu"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(options=options,
                              service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.execute_cdp_cmd("Browser.setDownloadBehavior",
                           {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads  # type: ignore[attr-defined]
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[EmbeddedBroker, str]]:
    port = free_port()
    with broker_in_thread(management_port=port, collect_statistics_interval=500) as broker:
        yield broker, f"http://127.0.0.1:{port}"


@pytest.fixture
def console(browser: WebDriver, served: tuple[EmbeddedBroker, str]) -> Iterator[Console]:
    """The console, logged in as guest, on the overview."""
    broker, url = served
    page = Console(browser, broker, url, browser.downloads)  # type: ignore[attr-defined]
    if not browser.current_url.startswith(url):
        browser.get(f"{url}/")
    page.until(lambda d: d.execute_script("return document.readyState") == "complete")
    if not page.logged_in():
        page.until(lambda d: page.find('form[name="login"]').is_displayed())
        page.login()
        page.until(lambda d: page.logged_in())
    page.go("#/")
    try:
        yield page
    finally:
        page.api.close()


def test_a_bad_login_shows_an_error_and_a_good_one_the_console(
        browser: WebDriver, served: tuple[EmbeddedBroker, str]) -> None:
    _, url = served
    browser.get(f"{url}/")
    browser.execute_script("sessionStorage.clear()")
    browser.refresh()
    page = Console(browser, served[0], url, Path())
    page.until(lambda d: page.find('form[name="login"]').is_displayed())
    page.login("guest", "not-the-password")
    page.text("#login-error", "Login failed")
    assert not page.logged_in()
    assert browser.execute_script("return sessionStorage.length") == 0
    page.login("guest", "guest")
    page.until(lambda d: page.logged_in())
    page.text("#whoami", "guest")
    assert browser.execute_script("return sessionStorage.getItem('amqpbroker.auth')") == \
        "Z3Vlc3Q6Z3Vlc3Q="  # base64 of guest:guest, sent as Basic auth


def test_the_overview_renders_totals_node_health_and_charts(console: Console) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(console.broker.url))
    try:
        channel = connection.channel()
        channel.queue_declare("overview-q")
        for _ in range(3):
            channel.basic_publish("", "overview-q", b"x")
        channel.queue_declare("overview-q", passive=True)  # a round trip: all are queued
        console.go("#/")

        def same_as_api(_: WebDriver) -> bool:
            totals = console.api.get("/api/overview").json()
            return (console.shown('[data-total="queues"] dd')
                    == str(totals["object_totals"]["queues"])
                    and console.shown('[data-total="connections"] dd')
                    == str(totals["object_totals"]["connections"])
                    and console.shown('[data-total="messages"] dd')
                    == str(totals["queue_totals"]["messages"]))

        console.until(same_as_api)
        assert int(console.shown('[data-total="messages"] dd')) >= 3
        assert int(console.shown('[data-total="connections"] dd')) >= 1
        console.contains("#node", "running, no alarms")
        assert console.find("#queued-chart").tag_name == "canvas"
        console.until(lambda d: console.has('#rates-chart-legend [data-series="Publish"]'))
        listeners = console.find("#listeners").text
        assert str(console.broker.port) in listeners
    finally:
        connection.close()
        console.api.delete("/api/queues/%2F/overview-q")


def test_a_queue_added_published_to_read_and_purged_from_the_pages(console: Console) -> None:
    console.go("#/queues")
    console.submit('form[data-form="add-queue"]', name="console-jobs", durable="false")
    console.contains('form[data-form="add-queue"] .result', "Queue console-jobs added")
    console.until(lambda d: console.has('#queues tr[data-name="console-jobs"]'))
    assert console.api.get("/api/queues/%2F/console-jobs").json()["durable"] is False
    console.click('#queues tr[data-name="console-jobs"] a')
    console.until(lambda d: d.execute_script("return location.hash")
                  == "#/queues/%2F/console-jobs")
    console.text(".queue-messages", "0")

    publish = 'form[data-form="publish"]'
    console.submit(publish, payload="hello from the console", delivery_mode="2",
                   headers="x-origin = console", properties="content_type = text/plain")
    console.contains(f"{publish} .result", "Message published.")
    console.text(".queue-messages", "1")
    got = console.api.get("/api/queues/%2F/console-jobs").json()
    assert got["messages"] == 1

    console.go("#/queues")
    console.text('#queues tr[data-name="console-jobs"] td.messages', "1")
    console.click('#queues tr[data-name="console-jobs"] a')
    console.text(".queue-messages", "1")

    console.submit('form[data-form="get-messages"]', ackmode="ack_requeue_true", count="1")
    console.text(".got-messages pre.payload", "hello from the console")
    message = console.find(".got-messages").text
    assert "x-origin" in message and "text/plain" in message and "delivery_mode" in message
    console.text(".queue-messages", "1")  # requeued

    console.click('form[data-form="purge"] button')
    console.accept()
    console.contains('form[data-form="purge"] .result', "purged")
    console.text(".queue-messages", "0")
    assert console.api.get("/api/queues/%2F/console-jobs").json()["messages"] == 0

    console.click('form[data-form="delete-queue"] button')
    console.accept()
    console.until(lambda d: d.execute_script("return location.hash") == "#/queues")
    console.until(lambda d: not console.has('#queues tr[data-name="console-jobs"]'))
    assert console.api.get("/api/queues/%2F/console-jobs").status_code == 404


def test_the_queue_list_filters_and_pages(console: Console) -> None:
    names = [f"paged-{n:02}" for n in range(12)]
    for name in names:
        assert console.api.put(f"/api/queues/%2F/{name}", json={}).status_code == 201
    try:
        console.go("#/queues")
        console.fill('form[data-filter="queues"]', name="paged-")
        console.until(lambda d: len(console.names("#queues tbody tr[data-name]")) == 12)
        console.fill('form[data-filter="queues"]', size="10")
        console.until(lambda d: len(console.names("#queues tbody tr[data-name]")) == 10)
        console.contains('form[data-filter="queues"] .pager', "of 2")
        console.fill('form[data-filter="queues"]', page="2")
        console.until(lambda d: console.names("#queues tbody tr[data-name]")
                      == ["paged-10", "paged-11"])
        console.click('form[data-filter="queues"] [name="regex"]')
        console.fill('form[data-filter="queues"]', name="^paged-0[35]$")
        console.until(lambda d: console.names("#queues tbody tr[data-name]")
                      == ["paged-03", "paged-05"])
        console.fill('form[data-filter="queues"]', name="paged-", regex=False, size="500")
        console.until(lambda d: len(console.names("#queues tbody tr[data-name]")) == 12)
        for _ in range(2):  # by name, then by name reversed
            console.click('#queues button[data-action="sort"][data-field="name"]')
        console.until(lambda d: console.names("#queues tbody tr[data-name]")
                      == sorted(names, reverse=True))
        console.contains('#queues button[data-field="name"]', "▼")
    finally:
        for name in names:
            console.api.delete(f"/api/queues/%2F/{name}")
        console.fill('form[data-filter="queues"]', name="", regex=False, size="100")


def test_a_refresh_keeps_what_the_user_is_typing(console: Console) -> None:
    console.go("#/queues")
    field = console.find('form[data-form="add-queue"] [name="name"]')
    field.send_keys("half-typed")
    assert console.api.put("/api/queues/%2F/appears-meanwhile", json={}).status_code == 201
    try:
        console.until(lambda d: console.has('#queues tr[data-name="appears-meanwhile"]'))
        assert field.get_attribute("value") == "half-typed"
        assert console.driver.switch_to.active_element == field
    finally:
        console.api.delete("/api/queues/%2F/appears-meanwhile")


def test_a_clients_connection_is_listed_and_closed(console: Console) -> None:
    parameters = pika.URLParameters(console.broker.url)
    parameters.client_properties = {"connection_name": "console-client"}
    connection = pika.BlockingConnection(parameters)
    channel = connection.channel()
    channel.queue_declare("consumed", auto_delete=True)
    channel.basic_consume("consumed", lambda *_: None, consumer_tag="console-consumer")
    try:
        console.go("#/queues/%2F/consumed")
        console.contains("#queue-consumers", "console-consumer")
        console.go("#/connections")
        console.contains("#connections", "console-client")
        row = next(r for r in console.finds("#connections tbody tr")
                   if "console-client" in r.text)
        assert "guest" in row.text and "Pika" in row.text
        row_name = row.get_attribute("data-name")
        console.go("#/channels")
        console.contains("#channels", "guest")
        console.go("#/connections")
        console.click(f'#connections tr[data-name="{row_name}"] a')
        console.contains("#connection-info", "AMQP 0-9-1")
        console.contains("#client-properties", "console-client")
        console.submit('form[data-form="close-connection"]', reason="closed by the test")
        console.accept()
        console.until(lambda d: d.execute_script("return location.hash") == "#/connections")
        console.until(lambda d: "console-client" not in console.find("#connections").text)

        def closed() -> str | None:
            try:
                connection.process_data_events(0)
            except pika.exceptions.ConnectionClosedByBroker as closing:
                return str(closing)
            return None

        assert "closed by the test" in wait_for(closed, what="the close to reach the client")
    finally:
        if connection.is_open:
            connection.close()


def test_the_close_button_of_the_list_closes_a_connection(console: Console) -> None:
    parameters = pika.URLParameters(console.broker.url)
    parameters.client_properties = {"connection_name": "closed-from-the-list"}
    connection = pika.BlockingConnection(parameters)
    try:
        console.go("#/connections")
        console.contains("#connections", "closed-from-the-list")
        name = next(c["name"] for c in console.api.get("/api/connections").json()
                    if c["user_provided_name"] == "closed-from-the-list")
        console.click(f'#connections button[data-name="{name}"]')
        console.accept()
        console.until(lambda d: "closed-from-the-list" not in console.shown("#connections"))
        assert name not in [c["name"] for c in console.api.get("/api/connections").json()]
    finally:
        if connection.is_open:
            with contextlib.suppress(pika.exceptions.AMQPError):
                connection.close()


def test_names_with_markup_slashes_and_spaces_are_shown_and_linked_literally(
        console: Console) -> None:
    vhost, name = "dev/1", 'a/b <i>c</i> & "d"'
    segments = f"{quote(vhost, safe='')}/{quote(name, safe='')}"
    assert console.api.put(f"/api/vhosts/{quote(vhost, safe='')}").status_code == 201
    assert console.api.put(f"/api/queues/{segments}", json={}).status_code == 201
    try:
        console.go("#/queues")
        console.until(lambda d: name in console.names("#queues tbody tr[data-name]"))
        assert not console.has("#queues i")  # shown as text, not markup
        link = next(r for r in console.finds("#queues tbody tr")
                    if r.get_attribute("data-name") == name).find_element(By.CSS_SELECTOR, "a")
        assert link.text == name
        link.click()
        console.until(lambda d: console.has(".queue-messages"))
        assert console.driver.execute_script("return location.hash") == f"#/queues/{segments}"
        console.contains("#main h1", f"{name} in virtual host {vhost}")
        console.submit('form[data-form="publish"]', payload="<b>not bold</b>")
        console.text(".queue-messages", "1")
        console.submit('form[data-form="get-messages"]')
        console.text(".got-messages pre.payload", "<b>not bold</b>")
        assert not console.has(".got-messages pre.payload b")
    finally:
        console.api.delete(f"/api/vhosts/{quote(vhost, safe='')}")


def test_an_exchange_added_bound_and_published_to_by_routing_key(console: Console) -> None:
    assert console.api.put("/api/queues/%2F/audit", json={}).status_code == 201
    try:
        console.go("#/exchanges")
        console.until(lambda d: console.has('#exchanges tr[data-name="amq.topic"]'))
        console.submit('form[data-form="add-exchange"]', name="console-events", type="topic")
        console.until(lambda d: console.has('#exchanges tr[data-name="console-events"]'))
        assert console.api.get("/api/exchanges/%2F/console-events").json()["type"] == "topic"
        console.click('#exchanges tr[data-name="console-events"] a')
        console.contains("#exchange-info", "topic")

        console.submit('form[data-form="add-binding"]', destination_type="q", other="audit",
                       routing_key="audit.#")
        console.contains("#bindings-source", "audit.#")

        publish = 'form[data-form="publish"]'
        console.submit(publish, routing_key="audit.login", payload="someone logged in")
        console.text(f"{publish} .result", "Message published.")
        console.submit(publish, routing_key="billing.paid", payload="nobody listens")
        console.text(f"{publish} .result", "Message published, but not routed.")
        got = console.api.post("/api/queues/%2F/audit/get", json={
            "count": 5, "ackmode": "ack_requeue_false", "encoding": "auto"}).json()
        assert [(m["routing_key"], m["payload"]) for m in got] == [
            ("audit.login", "someone logged in")]

        console.click('#bindings-source button[data-action="unbind"]')
        console.until(lambda d: "audit.#" not in console.find("#bindings-source").text)
        console.click('form[data-form="delete-exchange"] button')
        console.accept()
        console.until(lambda d: d.execute_script("return location.hash") == "#/exchanges")
        assert console.api.get("/api/exchanges/%2F/console-events").status_code == 404
    finally:
        console.api.delete("/api/exchanges/%2F/console-events")
        console.api.delete("/api/queues/%2F/audit")


def test_the_admin_pages_add_a_user_a_vhost_a_permission_and_a_policy(
        console: Console) -> None:
    console.go("#/admin/users")
    console.submit('form[data-form="add-user"]', name="carol", password="s3cret",
                   tags="monitoring")
    console.until(lambda d: console.has('#users tr[data-name="carol"]'))
    assert console.api.get("/api/users/carol").json()["tags"] == ["monitoring"]
    assert httpx.get(f"{console.url}/api/whoami", auth=("carol", "s3cret")).status_code == 200

    console.go("#/admin/vhosts")
    console.submit('form[data-form="add-vhost"]', name="console-vhost")
    console.until(lambda d: console.has('#vhosts tr[data-name="console-vhost"]'))
    assert console.api.get("/api/vhosts/console-vhost").status_code == 200
    console.until(lambda d: "console-vhost" in console.find("#vhost-filter").text)

    console.go("#/admin/permissions")
    console.until(lambda d: "carol" in console.find('select[name="user"]').text
                  and "console-vhost" in console.find('select[name="vhost"]').text)
    console.submit('form[data-form="set-permission"]', user="carol", vhost="console-vhost",
                   configure="^$", write=".*", read=".*")
    console.until(lambda d: console.has(
        '#permissions tr[data-user="carol"][data-vhost="console-vhost"]'))
    assert console.api.get("/api/permissions/console-vhost/carol").json()["configure"] == "^$"

    console.go("#/admin/policies")
    console.submit('form[data-form="add-policy"]', vhost="console-vhost", name="cap",
                   pattern="^capped\\.", apply_to="queues",
                   definition="max-length = 10\nmessage-ttl = 60000")
    console.until(lambda d: console.has('#policies tr[data-name="cap"]'))
    policy = console.api.get("/api/policies/console-vhost/cap").json()
    assert policy["definition"] == {"max-length": 10, "message-ttl": 60000}
    assert policy["apply-to"] == "queues"
    console.click('#policies button[data-action="delete-policy"]')
    console.accept()
    console.until(lambda d: not console.has('#policies tr[data-name="cap"]'))

    console.go("#/admin/users")
    console.click('#users tr[data-name="carol"] button[data-action="delete-user"]')
    console.accept()
    console.until(lambda d: not console.has('#users tr[data-name="carol"]'))
    assert console.api.get("/api/users/carol").status_code == 404
    console.go("#/admin/vhosts")
    console.click('#vhosts tr[data-name="console-vhost"] button')
    console.accept()
    console.until(lambda d: not console.has('#vhosts tr[data-name="console-vhost"]'))


def test_definitions_export_downloads_and_import_uploads(console: Console,
                                                         tmp_path: Path) -> None:
    assert console.api.put("/api/queues/%2F/exported-q", json={}).status_code == 201
    try:
        target = console.downloads / "console-export.json"
        console.submit('form[data-form="export-definitions"]', filename=target.name)
        console.contains('form[data-form="export-definitions"] .result', "Exported")
        wait_for(lambda: target.exists() and target.stat().st_size > 0, WAIT,
                 "the downloaded definitions")
        exported = json.loads(target.read_text())
        assert "exported-q" in [q["name"] for q in exported["queues"]]
        assert "guest" in [u["name"] for u in exported["users"]]

        upload = tmp_path / "import.json"
        upload.write_text(json.dumps({"queues": [
            {"name": "imported-q", "vhost": "/", "durable": True, "auto_delete": False,
             "arguments": {}}]}))
        console.find('form[data-form="import-definitions"] input[type="file"]').send_keys(
            str(upload))
        console.click('form[data-form="import-definitions"] button')
        console.contains('form[data-form="import-definitions"] .result',
                         "Definitions imported from import.json")
        assert console.api.get("/api/queues/%2F/imported-q").status_code == 200
    finally:
        console.api.delete("/api/queues/%2F/exported-q")
        console.api.delete("/api/queues/%2F/imported-q")


def test_logout_forgets_the_credentials(console: Console) -> None:
    console.click("#logout")
    console.until(lambda d: console.find('form[name="login"]').is_displayed())
    assert console.driver.execute_script(
        "return sessionStorage.getItem('amqpbroker.auth')") is None
    console.driver.refresh()
    console.until(lambda d: console.find('form[name="login"]').is_displayed())
    assert not console.logged_in()


def test_no_script_error_happened_on_any_page(browser: WebDriver) -> None:
    """Last: the browser's log of the whole module has no uncaught script error (answers
    of 4xx, which the pages show, are network entries, not script ones)."""
    errors = [entry for entry in browser.get_log("browser")
              if entry["level"] == "SEVERE" and entry.get("source") != "network"]
    assert errors == []
