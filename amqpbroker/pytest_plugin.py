"""pytest fixtures (registered through the `pytest11` entry point): a fresh embedded
broker per test, reachable from blocking and async clients alike."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from amqpbroker.testing import EmbeddedBroker, broker_in_thread


@pytest.fixture
def amqp_broker() -> Iterator[EmbeddedBroker]:
    """A fresh broker for one test, on an ephemeral loopback port."""
    with broker_in_thread() as broker:
        yield broker


@pytest.fixture
def amqp_url(amqp_broker: EmbeddedBroker) -> str:
    """The `amqp://` URL of a fresh broker for one test."""
    return amqp_broker.url
