"""RabbitMQ's dead-lettering rules, as pure functions on `Message` values.

`dead_letter` makes the message that a queue republishes to its dead-letter exchange:
the x-death history and the x-first-death-* / x-last-death-* headers recorded, the
per-message expiration removed, CC and BCC dropped when the queue sets a dead-letter
routing key. `is_cycle` decides whether a dead-lettered message must be dropped instead
of entering a queue.

Headers the rules do not touch keep their encoded bytes (and so their AMQP types), and so
do the x-death entries that are not updated. Values written here have RabbitMQ's types:
`count` long `l`, `time` timestamp `T`, strings longstr `S`, `routing-keys` an array.
Like RabbitMQ (3.10 `rabbit_misc:set_table_value`, 3.13 `lists:usort`) the new headers
table is sorted by key.
"""

from __future__ import annotations

import datetime
from typing import Any

from amqpbroker.broker import properties
from amqpbroker.broker.message import Message
from amqpbroker.values import (
    EncodedTable,
    Long,
    array_items,
    decode_value,
    encode_fields,
    encode_items,
    encode_longstr,
    encode_value,
    table_items,
)

REASONS = frozenset({"rejected", "expired", "maxlen", "delivery_limit"})

# A header (or x-death entry field): its encoded value (type tag first) and decoded view.
_Field = tuple[bytes, Any]


def _field(value: Any) -> _Field:
    return encode_value(value), value


def _table(fields: dict[str, _Field]) -> tuple[EncodedTable, dict[str, Any]]:
    """The encoded table of `fields` (in their order) and its decoded view."""
    data = encode_fields((key, raw) for key, (raw, _value) in fields.items())
    view = {key: value for key, (_raw, value) in fields.items()}
    return EncodedTable(data, view), view


def _fields(raw_table: bytes | None, view: dict[str, Any]) -> dict[str, _Field]:
    """Each field of an encoded table (4-byte length first) with its decoded value; a
    key given twice keeps its last value, as decoding does."""
    if raw_table is None:
        return {}
    fields: dict[str, _Field] = {}
    for key, raw in table_items(raw_table):
        fields.pop(key, None)
        fields[key] = (raw, view[key] if key in view else decode_value(raw))
    return fields


def _sorted(fields: dict[str, _Field]) -> dict[str, _Field]:
    return dict(sorted(fields.items(), key=lambda item: item[0].encode("utf-8")))


def _cc(headers: dict[str, Any]) -> list[str | bytes]:
    values = headers.get("CC")
    if not isinstance(values, list):
        return []
    return [v for v in values if isinstance(v, str | bytes)]


def _array(keys: list[str | bytes]) -> bytes:
    return encode_items(map(encode_longstr, keys))


def _is_entry(value: Any, queue_name: str, reason: str) -> bool:
    return (isinstance(value, dict) and value.get("queue") == queue_name
            and value.get("reason") == reason)


def dead_letter(message: Message, queue_name: str, reason: str, dlx_routing_key: str | None,
                now: float, *, dlx: str | None = None) -> Message:
    """The message that queue `queue_name` dead-letters, for `reason` (one of `REASONS`),
    at wall-clock time `now` (seconds); the body is shared.

    - Exchange: `dlx` (the dead-letter exchange's name, as RabbitMQ delivers it) or, when
      not given, the message's own. Routing key: `dlx_routing_key` when set (then the CC
      and BCC headers are removed), else the message's own.
    - The `expiration` property is removed; its value becomes the new entry's
      `original-expiration`. Every other property and header is kept.
    - ``x-death``, most recent first, one entry per (queue, reason):

      * the message's first entry: ``count`` (long 1), ``reason``, ``queue``, ``time``,
        ``exchange`` (`message.exchange`: where the message was last published),
        ``routing-keys`` (its routing key, then its CC values) [, ``original-expiration``];
      * a later new entry: the same fields, keys sorted (RabbitMQ 3.10 sorts every entry
        it writes into an existing x-death array);
      * an entry for the same queue and reason: count + 1, moved to the front, keys
        sorted, every other field (``time`` included: RabbitMQ keeps the first death's
        time, 3.10 and 3.13 alike) as it was; later duplicates of it are dropped.

    - ``x-first-death-reason/-queue/-exchange`` are set when the message has no x-death
      history yet and never changed after; ``x-last-death-reason/-queue/-exchange``
      (RabbitMQ 3.13) are set every time. All longstr.

    Raises ValueError for an unknown reason or headers that cannot be decoded.
    """
    if reason not in REASONS:
        raise ValueError(f"unknown dead-letter reason {reason!r}")
    values = properties.split_header(message.header)
    view = properties.headers_of(message) or {}
    fields = _fields(values.get("headers"), view)

    history: list[_Field] | None = None
    x_death = fields.get("x-death")
    if x_death is not None and x_death[0][:1] == b"A" and isinstance(x_death[1], list):
        history = list(zip(array_items(x_death[0], 1), x_death[1], strict=True))

    timestamp = int(now)
    updated: _Field | None = None
    if history:
        old = next((f for f in history if _is_entry(f[1], queue_name, reason)), None)
        if old is not None:
            history = [f for f in history if not _is_entry(f[1], queue_name, reason)]
            entry = _fields(old[0][1:], old[1])
            count = entry.get("count", (b"", None))[1]
            new_count = count + 1 if isinstance(count, int) and not isinstance(count, bool) else 1
            entry["count"] = _field(Long(new_count))
            table, entry_view = _table(_sorted(entry))
            updated = (b"F" + table.data, entry_view)
    if updated is None:
        keys = [message.routing_key, *_cc(view)]
        entry = {
            "count": _field(Long(1)),
            "reason": _field(reason),
            "queue": _field(queue_name),
            "time": (b"T" + timestamp.to_bytes(8, "big"),
                     datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC)),
            "exchange": _field(message.exchange),
            "routing-keys": (b"A" + _array(keys), keys),
        }
        if message.expiration is not None:
            entry["original-expiration"] = _field(message.expiration)
        if history is not None:
            entry = _sorted(entry)
        table, entry_view = _table(entry)
        updated = (b"F" + table.data, entry_view)
    entries = [updated, *(history or [])]
    raw_array = b"".join(raw for raw, _value in entries)
    fields["x-death"] = (b"A" + len(raw_array).to_bytes(4, "big") + raw_array,
                         [value for _raw, value in entries])

    if history is None:
        fields["x-first-death-reason"] = _field(reason)
        fields["x-first-death-queue"] = _field(queue_name)
        fields["x-first-death-exchange"] = _field(message.exchange)
    fields["x-last-death-reason"] = _field(reason)
    fields["x-last-death-queue"] = _field(queue_name)
    fields["x-last-death-exchange"] = _field(message.exchange)
    if dlx_routing_key is not None:
        fields.pop("CC", None)
        fields.pop("BCC", None)

    headers, _view = _table(_sorted(fields))
    return properties.replace(
        message,
        exchange=dlx,
        routing_key=message.routing_key if dlx_routing_key is None else dlx_routing_key,
        expiration=None,
        headers=headers,
    )


def is_cycle(message: Message, queue_name: str, reason: str) -> bool:
    """Whether `message`, returned by `dead_letter` for `reason`, must be dropped instead
    of entering queue `queue_name` (RabbitMQ's `rabbit_dead_letter:detect_cycles` and
    `is_death_cycle`, v2).

    Never for reason ``rejected``: a client took part, so it is no automatic loop.
    Otherwise walk ``x-death`` most recent first (so this death comes first) up to the
    first entry for `queue_name`: no such entry, no cycle. If there is one, it is a cycle
    when every entry walked, that one included, is a table whose reason is not
    ``rejected``: the message went round without any client rejecting it. (A rejection
    older than the last visit to `queue_name` does not break the cycle.)
    """
    if reason == "rejected":
        return False
    x_death = (properties.headers_of(message) or {}).get("x-death")
    if not isinstance(x_death, list):
        return False
    for index, entry in enumerate(x_death):
        if isinstance(entry, dict) and entry.get("queue") == queue_name:
            return all(isinstance(e, dict) and e.get("reason") != "rejected"
                       for e in x_death[:index + 1])
    return False
