"""pytest fixtures (registered through the `pytest11` entry point).

- `amqp_broker`: a fresh embedded broker for one test (settings from the
  `@pytest.mark.amqpbroker(**settings)` marker); `amqp_url` is its URL.
- `amqp_session_broker`: one broker for the whole session (one per xdist worker), and
  `amqp_vhost`: a fresh vhost on it for one test, deleted at teardown.
- `pika_connection` and `aio_pika_connection`: a connected client on the test's vhost
  (on the test's `amqp_broker` if it has one), offered when pika, or aio-pika with
  pytest-asyncio, is installed.

With `--amqp-url URL` (or `AMQP_URL`) the client fixtures and `amqp_url` use that broker,
e.g. a real RabbitMQ in CI; the fixtures that need the embedded broker skip.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from amqpbroker.testing import BrokerView, EmbeddedBroker, broker_in_thread


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("amqpbroker").addoption(
        "--amqp-url", default=os.environ.get("AMQP_URL"),
        help="Run the AMQP fixtures against this broker instead of an embedded one "
             "(default: $AMQP_URL).")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "amqpbroker(**settings): settings of the test's "
                                       "amqp_broker (e.g. data_dir=..., heartbeat=5)")


def _external(config: pytest.Config) -> str | None:
    url: str | None = config.getoption("--amqp-url")
    return url or None


def _embedded_only(config: pytest.Config) -> None:
    url = _external(config)
    if url:
        pytest.skip(f"needs the embedded broker; the tests run against {url}")


@pytest.fixture
def amqp_broker(request: pytest.FixtureRequest) -> Iterator[EmbeddedBroker]:
    """A fresh broker for one test, on an ephemeral loopback port."""
    _embedded_only(request.config)
    marker = request.node.get_closest_marker("amqpbroker")
    settings: dict[str, Any] = dict(marker.kwargs) if marker else {}
    with broker_in_thread(**settings) as broker:
        yield broker


@pytest.fixture
def amqp_url(request: pytest.FixtureRequest) -> str:
    """The `amqp://` URL of a fresh broker for one test (or of `--amqp-url`)."""
    external = _external(request.config)
    if external:
        return external
    broker: EmbeddedBroker = request.getfixturevalue("amqp_broker")
    return broker.url


@pytest.fixture(scope="session")
def amqp_session_broker(request: pytest.FixtureRequest) -> Iterator[EmbeddedBroker]:
    """One broker for the session (each xdist worker has its own)."""
    _embedded_only(request.config)
    with broker_in_thread() as broker:
        yield broker


@pytest.fixture
def amqp_vhost(amqp_session_broker: EmbeddedBroker) -> Iterator[BrokerView]:
    """A fresh vhost on the session broker for one test: `.url` to connect, and the
    inspection, waits and faults of a `BrokerView`."""
    with amqp_session_broker.new_vhost() as view:
        yield view


def _client_url(request: pytest.FixtureRequest) -> str:
    """Where a client fixture connects: `--amqp-url`, else the test's own `amqp_broker`
    if it uses one, else a fresh vhost on the session broker."""
    external = _external(request.config)
    if external:
        return external
    fixture = "amqp_broker" if "amqp_broker" in request.fixturenames else "amqp_vhost"
    view: BrokerView = request.getfixturevalue(fixture)
    return view.url


if importlib.util.find_spec("pika") is not None:
    import pika

    @pytest.fixture
    def pika_connection(request: pytest.FixtureRequest) -> Iterator[pika.BlockingConnection]:
        """A pika `BlockingConnection` to the test's vhost, closed at teardown."""
        connection = pika.BlockingConnection(pika.URLParameters(_client_url(request)))
        yield connection
        with contextlib.suppress(Exception):  # the test may have closed or broken it
            connection.close()


if (importlib.util.find_spec("aio_pika") is not None
        and importlib.util.find_spec("pytest_asyncio") is not None):
    import aio_pika
    import pytest_asyncio

    @pytest_asyncio.fixture
    async def aio_pika_connection(request: pytest.FixtureRequest
                                  ) -> AsyncIterator[aio_pika.abc.AbstractConnection]:
        """An aio-pika connection to the test's vhost, closed at teardown."""
        connection = await aio_pika.connect(_client_url(request))
        yield connection
        with contextlib.suppress(Exception):
            await connection.close()
