"""What `Connection.receive_data` and `Connection.tick` return besides packets.

Every packet the client sends after CONNECT (and CONNECT itself) is handed to the owner
as the packet value (`packets.py`), in wire order; these commands say that the
connection ended for a reason of the protocol's own.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Failed:
    """The client broke the protocol: the connection is closed after `data` (an MQTT 5
    DISCONNECT, a CONNACK refusing the version, or nothing) is sent. `code` is the MQTT
    5 reason code; the will is to be published."""

    code: int
    text: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Expired:
    """No CONNECT in time, or the client was silent for 1.5 keepalive intervals: the
    connection is closed (the will is to be published)."""

    text: str


Command = Failed | Expired
