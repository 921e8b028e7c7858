"""The pytest fixtures as a user's project meets them, run by pytester in a subprocess:
per-test vhosts on a session broker, the client fixtures, xdist workers with their own
brokers, the settings marker, and `--amqp-url` pointing the same suite at another
broker."""

from __future__ import annotations

import pytest

from amqpbroker.testing import broker_in_thread

pytestmark = pytest.mark.timeout(120)

HUNDRED_TESTS = '''
import pika
import pytest

@pytest.mark.parametrize("n", range(100))
def test_own_vhost(amqp_vhost, pika_connection, n):
    channel = pika_connection.channel()
    channel.queue_declare("jobs")
    channel.basic_publish("", "jobs", str(n).encode())
    assert amqp_vhost.wait_for_queue_depth("jobs", 1).depth == 1  # no other test's message
    assert amqp_vhost.vhost.startswith("test-")
'''


def test_a_hundred_tests_on_per_test_vhosts(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(HUNDRED_TESTS)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=100)


def test_xdist_workers_have_their_own_broker(pytester: pytest.Pytester) -> None:
    pytester.makepyfile('''
import os

def test_port(amqp_session_broker, amqp_vhost, tmp_path_factory):
    root = tmp_path_factory.getbasetemp().parent
    (root / f"port-{os.environ['PYTEST_XDIST_WORKER']}").write_text(str(amqp_session_broker.port))

test_a = test_b = test_c = test_d = test_port
''')
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(passed=5)
    ports = {path.read_text() for path in pytester.path.parent.rglob("port-gw*")}
    assert len(ports) == 2


def test_async_fixture_in_strict_mode(pytester: pytest.Pytester) -> None:
    pytester.makepyfile('''
import aio_pika
import pytest

@pytest.mark.asyncio
async def test_publish(aio_pika_connection, amqp_vhost):
    channel = await aio_pika_connection.channel()
    await channel.declare_queue("q")
    await channel.default_exchange.publish(aio_pika.Message(b"hi"), "q")
    message = await amqp_vhost.aio.wait_for_message("q")
    assert message.text == "hi"
''')
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider",
                                           "-o", "asyncio_mode=strict")
    result.assert_outcomes(passed=1)


def test_settings_marker(pytester: pytest.Pytester) -> None:
    pytester.makepyfile('''
import pika
import pytest

@pytest.mark.amqpbroker(frame_max=8192)
def test_small_frames(amqp_broker):
    connection = pika.BlockingConnection(pika.URLParameters(amqp_broker.url))
    assert connection._impl.params.frame_max == 8192
    connection.close()
''')
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_amqp_url_points_the_suite_elsewhere(pytester: pytest.Pytester) -> None:
    pytester.makepyfile('''
def test_client(pika_connection, amqp_url):
    assert amqp_url.startswith("amqp://")
    pika_connection.channel().queue_declare("declared-elsewhere", durable=True)

def test_needs_embedded(amqp_broker):
    raise AssertionError("not reached")
''')
    with broker_in_thread() as other:
        result = pytester.runpytest_subprocess("-q", "-rs", "-p", "no:cacheprovider",
                                               f"--amqp-url={other.url}")
        result.assert_outcomes(passed=1, skipped=1)
        result.stdout.fnmatch_lines([f"*needs the embedded broker; the tests run against "
                                     f"{other.url}*"])
        assert "declared-elsewhere" in [q.name for q in other.queues()]
