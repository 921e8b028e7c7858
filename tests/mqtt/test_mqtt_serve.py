"""`amqpbroker serve` with the MQTT listener: `--mqtt-port`, and a port in use."""

from __future__ import annotations

import socket
import subprocess

import pytest
from support.processes import free_port, serve_command

pytestmark = pytest.mark.timeout(60)


def test_mqtt_port_in_use_is_one_clear_line() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        result = subprocess.run(serve_command(free_port(), None, "--mqtt-port", str(taken)),
                                capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"the MQTT port {taken}" in lines[0]
    assert "address already in use" in lines[0]
