"""A queue deeper than its in-memory limit pages its tail to disk and gives every message
back, in order, to a real client."""

from __future__ import annotations

import pika

from amqpbroker.testing import broker_in_thread


def test_deep_queue_round_trip_in_order() -> None:
    with broker_in_thread(queue_memory_limit=100) as broker:
        connection = pika.BlockingConnection(pika.URLParameters(broker.url))
        channel = connection.channel()
        channel.queue_declare("deep")
        for i in range(3000):
            channel.basic_publish("", "deep", b"m%d" % i)
        assert channel.queue_declare("deep", passive=True).method.message_count == 3000
        paged = broker.call(lambda: broker.server.broker.vhosts["/"].queues["deep"].buffer.paged)
        assert paged == 2900
        bodies = []
        for method, _, body in channel.consume("deep", inactivity_timeout=5):
            assert method is not None, f"stopped after {len(bodies)} messages"
            bodies.append(body)
            channel.basic_ack(method.delivery_tag)
            if len(bodies) == 3000:
                break
        assert bodies == [b"m%d" % i for i in range(3000)]
        channel.cancel()
        connection.close()
