"""Every broker a test starts as a subprocess leaves the fixed ports alone unless the test
asks for them: the management API, the metrics, MQTT and STOMP default to 15672, 15692,
1883 and 61613, which two brokers cannot share."""

import os

os.environ.setdefault("AMQPBROKER_MANAGEMENT_PORT", "0")
os.environ.setdefault("AMQPBROKER_PROMETHEUS_PORT", "0")
os.environ.setdefault("AMQPBROKER_STOMP_PORT", "0")
os.environ.setdefault("AMQPBROKER_MQTT_PORT", "0")
