"""Every broker a test starts as a subprocess leaves the fixed ports alone unless the test
asks for them: the management API, the metrics, MQTT, STOMP, Web STOMP and Web MQTT
default to 15672, 15692, 1883, 61613, 15674 and 15675, which two brokers cannot share."""

import os

os.environ.setdefault("AMQPBROKER_MANAGEMENT_PORT", "0")
os.environ.setdefault("AMQPBROKER_PROMETHEUS_PORT", "0")
os.environ.setdefault("AMQPBROKER_STOMP_PORT", "0")
os.environ.setdefault("AMQPBROKER_MQTT_PORT", "0")
os.environ.setdefault("AMQPBROKER_MQTT_TLS_PORT", "0")
os.environ.setdefault("AMQPBROKER_STOMP_TLS_PORT", "0")
os.environ.setdefault("AMQPBROKER_WEB_STOMP_PORT", "0")
os.environ.setdefault("AMQPBROKER_WEB_MQTT_PORT", "0")
