"""Every broker a test starts as a subprocess leaves the HTTP and STOMP ports alone unless
the test asks for them: the management API, the metrics and STOMP default to the fixed
ports 15672, 15692 and 61613, which two brokers cannot share."""

import os

os.environ.setdefault("AMQPBROKER_MANAGEMENT_PORT", "0")
os.environ.setdefault("AMQPBROKER_PROMETHEUS_PORT", "0")
os.environ.setdefault("AMQPBROKER_STOMP_PORT", "0")
