"""Numbers of the AMQP 0-9-1 wire format: frame types, the frame end octet, class ids and
the method indexes this package dispatches on.

A method index packs a method's class id and method id into one int
(`class_id << 16 | method_id`), as pamqp's `index` does; `split_index` takes it apart.
"""

from __future__ import annotations

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"

FRAME_METHOD = 1
FRAME_HEADER = 2
FRAME_BODY = 3
FRAME_HEARTBEAT = 8
FRAME_END = 0xCE
FRAME_END_BYTE = b"\xce"
#: type (1) + channel (2) + size (4) + frame end (1)
FRAME_OVERHEAD = 8
HEARTBEAT_FRAME = b"\x08\x00\x00\x00\x00\x00\x00\xce"

CLASS_CONNECTION = 10
CLASS_CHANNEL = 20
CLASS_BASIC = 60

METHOD_BASIC_PUBLISH = 40
METHOD_BASIC_DELIVER = 60
METHOD_BASIC_ACK = 80
METHOD_BASIC_NACK = 120

_INDEX_SHIFT = 16
_METHOD_MASK = 0xFFFF


def method_index(class_id: int, method_id: int) -> int:
    """The one-int index of a method."""
    return class_id << _INDEX_SHIFT | method_id


def split_index(index: int) -> tuple[int, int]:
    """(class id, method id) of a method index."""
    return index >> _INDEX_SHIFT, index & _METHOD_MASK


def class_of(index: int) -> int:
    """The class id of a method index."""
    return index >> _INDEX_SHIFT


BASIC_PUBLISH = method_index(CLASS_BASIC, METHOD_BASIC_PUBLISH)
BASIC_ACK = method_index(CLASS_BASIC, METHOD_BASIC_ACK)
BASIC_REJECT = method_index(CLASS_BASIC, 90)
BASIC_NACK = method_index(CLASS_BASIC, METHOD_BASIC_NACK)
CHANNEL_OPEN = method_index(CLASS_CHANNEL, 10)
CHANNEL_CLOSE = method_index(CLASS_CHANNEL, 40)
CHANNEL_CLOSE_OK = method_index(CLASS_CHANNEL, 41)
CONNECTION_CLOSE = method_index(CLASS_CONNECTION, 50)
CONNECTION_CLOSE_OK = method_index(CLASS_CONNECTION, 51)
