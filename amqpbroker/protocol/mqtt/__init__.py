"""MQTT 3.1, 3.1.1 and 5.0, sans-IO: packets (`packets.py`), their codec (`codec.py`),
topic names and filters (`topics.py`) and the connection state machine
(`connection.py`)."""
