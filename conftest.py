"""Every broker a test starts as a subprocess leaves the HTTP, STOMP and WebSocket ports
alone unless the test asks for them: the management API, the metrics, STOMP, Web STOMP and
Web MQTT default to the fixed ports 15672, 15692, 61613, 15674 and 15675, which two brokers
cannot share."""

import os

os.environ.setdefault("AMQPBROKER_MANAGEMENT_PORT", "0")
os.environ.setdefault("AMQPBROKER_PROMETHEUS_PORT", "0")
os.environ.setdefault("AMQPBROKER_STOMP_PORT", "0")
os.environ.setdefault("AMQPBROKER_WEB_STOMP_PORT", "0")
os.environ.setdefault("AMQPBROKER_WEB_MQTT_PORT", "0")
