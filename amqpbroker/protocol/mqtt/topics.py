"""MQTT topic names and filters: validity, matching, and the mapping to and from AMQP
topic routing keys (`/` <-> `.`, `+` <-> `*`, `#` unchanged), as RabbitMQ's MQTT plugin
maps them onto `amq.topic`."""

from __future__ import annotations

_TO_AMQP = str.maketrans({"/": ".", "+": "*"})
_FROM_AMQP = str.maketrans({".": "/", "*": "+"})

SHARE_PREFIX = "$share/"


def to_routing_key(topic: str) -> str:
    """The AMQP routing key (or binding key, for a filter) of an MQTT topic."""
    return topic.translate(_TO_AMQP)


def from_routing_key(routing_key: str) -> str:
    """The MQTT topic of an AMQP routing key."""
    return routing_key.translate(_FROM_AMQP)


def valid_topic(topic: str) -> bool:
    """A topic name a PUBLISH may carry: not empty, no wildcards."""
    return bool(topic) and "+" not in topic and "#" not in topic


def valid_filter(topic_filter: str) -> bool:
    """A topic filter: `+` only as a whole level, `#` only as the whole last level."""
    if not topic_filter:
        return False
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            return False
        if "+" in level and level != "+":
            return False
    return True


def matches(topic_filter: str, topic: str) -> bool:
    """The filter matches the topic name (MQTT semantics: `$` topics are not matched by a
    wildcard in the first level; `a/#` also matches `a`)."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    filter_levels = topic_filter.split("/")
    topic_levels = topic.split("/")
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= len(topic_levels):
            return False
        if level != "+" and level != topic_levels[index]:
            return False
    return len(filter_levels) == len(topic_levels)
