"""Web STOMP from a real headless Chromium (selenium): a tiny inline page, served from
loopback (Chromium lets no other origin reach a loopback port), opens
`new WebSocket(url, "v12.stomp")`, CONNECTs, subscribes and gets back what it sent, and an
AMQP publish reaches it too."""

from __future__ import annotations

import http.server
import shutil
import threading
from collections.abc import Iterator
from typing import Any

import pika
import pytest
from support.processes import free_port

from amqpbroker.testing import broker_in_thread

CHROMIUM = next((found for name in ("chromium", "chromium-browser", "google-chrome")
                 if (found := shutil.which(name))), None)
CHROMEDRIVER = shutil.which("chromedriver")
if CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip("chromium and chromedriver not found (apt-get install chromium "
                "chromium-driver, or `make test` as root)", allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")

from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

pytestmark = pytest.mark.timeout(60)

PAGE = """<!doctype html><title>web stomp</title><script>
window.frames_in = [];
window.protocol = null;
window.failed = false;
function run(url) {
  const ws = new WebSocket(url, "v12.stomp");
  ws.onopen = () => {
    window.protocol = ws.protocol;
    ws.send("CONNECT\\naccept-version:1.2\\nhost:/\\nlogin:guest\\npasscode:guest\\n\\n\\0");
  };
  ws.onmessage = (event) => {
    window.frames_in.push(event.data);
    if (event.data.startsWith("CONNECTED")) {
      ws.send("SUBSCRIBE\\nid:0\\ndestination:/queue/browser\\nreceipt:subscribed\\n\\n\\0");
      ws.send("SEND\\ndestination:/queue/browser\\n\\nfrom the browser\\0");
    }
  };
  ws.onerror = () => { window.failed = true; };
}
</script>"""


class _Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = PAGE.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def page() -> Iterator[str]:
    """The URL of the page, served on an ephemeral loopback port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options,
                              service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def frames(driver: WebDriver) -> list[str]:
    assert not driver.execute_script("return window.failed"), "the WebSocket failed"
    return driver.execute_script("return window.frames_in")  # type: ignore[no-any-return]


def test_a_browser_speaks_stomp_over_websocket(browser: WebDriver, page: str) -> None:
    port = free_port()
    with broker_in_thread(web_stomp_port=port) as broker:
        browser.get(page)
        browser.execute_script("run(arguments[0])", f"ws://127.0.0.1:{port}/ws")
        wait = WebDriverWait(browser, 10, poll_frequency=0.05)

        def bodies(driver: Any) -> list[str]:
            """The MESSAGE bodies (a WebSocket message may hold more than one frame)."""
            received = "".join(frames(driver)).split("\0")
            return [frame.split("\n\n", 1)[1] for frame in received
                    if frame.lstrip("\n").startswith("MESSAGE")]

        assert wait.until(bodies) == ["from the browser"]
        assert browser.execute_script("return window.protocol") == "v12.stomp"
        connection = pika.BlockingConnection(pika.ConnectionParameters(
            "127.0.0.1", broker.port, credentials=pika.PlainCredentials("guest", "guest")))
        try:
            connection.channel().basic_publish("", "browser", b"from amqp")
        finally:
            connection.close()
        assert wait.until(lambda driver: len(bodies(driver)) == 2 and bodies(driver))[1] \
            == "from amqp"
