"""Every broker a test starts as a subprocess leaves the HTTP ports alone unless the test
asks for them: the management API, the metrics and MQTT default to the fixed ports
15672, 15692 and 1883, which two brokers cannot share."""

import os

os.environ.setdefault("AMQPBROKER_MANAGEMENT_PORT", "0")
os.environ.setdefault("AMQPBROKER_PROMETHEUS_PORT", "0")
os.environ.setdefault("AMQPBROKER_MQTT_PORT", "0")
