"""Take `docs/console.png`: the console's overview (1280x800) of a broker with queues
holding messages, publishers and a consumer running for long enough to draw the charts.

    .venv/bin/python docs/screenshot.py [seconds of traffic, default 40]

Needs chromium, chromedriver and selenium (the `test` extra)."""

from __future__ import annotations

import shutil
import socket
import sys
import threading
import time
from pathlib import Path

import pika
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from amqpbroker.testing import broker_in_thread

OUT = Path(__file__).with_name("console.png")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def traffic(url: str, stop: threading.Event) -> None:
    """Publish to three queues at a rate that rises and falls; consume one of them."""
    publisher = pika.BlockingConnection(pika.URLParameters(url))
    consumer = pika.BlockingConnection(pika.URLParameters(url))
    channel, reader = publisher.channel(), consumer.channel()
    channel.confirm_delivery()
    for name in ("orders", "invoices", "emails"):
        channel.queue_declare(name, durable=True)
    reader.basic_qos(prefetch_count=20)
    reader.basic_consume("emails", lambda ch, method, _p, _b: ch.basic_ack(method.delivery_tag))
    start = time.monotonic()
    while not stop.is_set():
        elapsed = time.monotonic() - start
        burst = 5 + int(20 * abs(((elapsed / 12) % 2) - 1))
        for i in range(burst):
            queue = ("orders", "invoices", "emails")[i % 3]
            channel.basic_publish("", queue, b'{"id": %d}' % i,
                                  pika.BasicProperties(content_type="application/json"))
        consumer.process_data_events(0.2)
    publisher.close()
    consumer.close()


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 40.0
    port = free_port()
    with broker_in_thread(management_port=port, collect_statistics_interval=1000) as broker:
        stop = threading.Event()
        worker = threading.Thread(target=traffic, args=(broker.url, stop), daemon=True)
        worker.start()
        options = webdriver.ChromeOptions()
        for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                         "--hide-scrollbars"):
            options.add_argument(argument)
        service = webdriver.ChromeService(executable_path=shutil.which("chromedriver"))
        driver = webdriver.Chrome(options=options, service=service)
        try:
            driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
                "width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False})
            driver.get(f"http://127.0.0.1:{port}/")
            driver.find_element(By.NAME, "username").send_keys("guest")
            driver.find_element(By.NAME, "password").send_keys("guest", Keys.ENTER)
            WebDriverWait(driver, 10).until(
                lambda d: d.find_element(By.ID, "app").is_displayed())
            time.sleep(seconds)  # traffic for the charts to draw
            driver.execute_script(
                "window.dispatchEvent(new HashChangeEvent('hashchange'))")
            WebDriverWait(driver, 10).until(lambda d: d.execute_script(
                "return document.getElementById('main').dataset.refreshed === 'yes'"))
            driver.save_screenshot(str(OUT))
        finally:
            driver.quit()
            stop.set()
            worker.join(10)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
