"""Fixtures for the hostile-input tests: every test fails if the broker logged an error."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from hostile_support import ErrorRecords


@pytest.fixture(autouse=True)
def no_broker_errors() -> Iterator[ErrorRecords]:
    """Fails the test when the broker logs an ERROR (an internal failure) while it runs."""
    handler = ErrorRecords()
    logger = logging.getLogger("amqpbroker")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
    assert not handler.records, f"the broker logged errors: {handler.describe()}"
