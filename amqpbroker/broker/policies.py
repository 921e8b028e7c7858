"""Policies: named sets of queue and exchange settings that apply by name pattern.

This module owns the `Policy` value and everything RabbitMQ decides about one: its
validation, with RabbitMQ's texts (`make_policy` raises `PolicyError`); which policy
applies to a queue or an exchange (`match_queue`, `match_exchange`: the matching one of
highest priority, ties broken by name); and the merge of a policy with an operator
policy (`effective_definition`: the smaller of two numeric caps). Keeping the policies
of a vhost and re-applying them is `VirtualHost`'s business; turning an effective
definition into settings is `Queue.apply_policy`'s and `Exchange.apply_policy`'s.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from amqpbroker import errors

log = logging.getLogger("amqpbroker.policies")

APPLY_TO = ("all", "queues", "exchanges", "classic_queues", "quorum_queues", "streams")
QUEUE_TYPE_APPLY_TO = {"classic": "classic_queues", "quorum": "quorum_queues",
                       "stream": "streams"}
# The keys an operator policy may set, and the numeric keys where the smaller value wins
# (RabbitMQ's rabbit_policies merge strategy).
OPERATOR_KEYS = ("delivery-limit", "expires", "max-in-memory-bytes", "max-in-memory-length",
                 "max-length", "max-length-bytes", "message-ttl")
# Keys accepted without effect here (mirroring, federation), with a warning in the log.
NO_EFFECT_KEYS = ("federation-upstream", "federation-upstream-pattern",
                  "federation-upstream-set", "ha-mode", "ha-params", "ha-promote-on-failure",
                  "ha-promote-on-shutdown", "ha-sync-batch-size", "ha-sync-mode",
                  "queue-master-locator")
# A queue type does not match a policy holding any of these keys (RabbitMQ's
# is_policy_applicable, from each queue type's unsupported policies).
UNSUPPORTED = {
    "classic": frozenset(("delivery-limit", "dead-letter-strategy", "initial-cluster-size",
                          "queue-leader-locator")),
    "quorum": frozenset(("ha-mode", "ha-params", "ha-promote-on-failure",
                         "ha-promote-on-shutdown", "ha-sync-batch-size", "ha-sync-mode",
                         "initial-cluster-size", "queue-master-locator", "queue-mode")),
    "stream": frozenset(("dead-letter-exchange", "dead-letter-routing-key",
                         "dead-letter-strategy", "delivery-limit", "expires", "ha-mode",
                         "ha-params", "ha-promote-on-failure", "ha-promote-on-shutdown",
                         "ha-sync-batch-size", "ha-sync-mode", "max-in-memory-bytes",
                         "max-in-memory-length", "max-length", "message-ttl", "overflow",
                         "queue-master-locator", "queue-mode")),
}


class PolicyError(Exception):
    """An invalid policy. `detail` is RabbitMQ's text for the fault; the message is the
    whole reason RabbitMQ gives (`Validation failed\\n\\n<detail>\\n`)."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(f"Validation failed\n\n{detail}\n")


def erlang_term(value: Any) -> str:
    """A JSON value as Erlang's ~tp prints it once RabbitMQ has decoded it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return errors.erlang_float(value)
    if isinstance(value, str):
        text = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'<<"{text}"/utf8>>' if not value.isascii() else f'<<"{text}">>'
    if isinstance(value, list):
        if value and all(isinstance(v, int) and not isinstance(v, bool) and 32 <= v <= 126
                         for v in value):
            return json.dumps("".join(map(chr, value)))  # a printable list is a string
        return f"[{','.join(erlang_term(v) for v in value)}]"
    if isinstance(value, dict):
        items = ",".join(f"{erlang_term(k)} => {erlang_term(v)}"
                         for k, v in sorted(value.items()))
        return f"#{{{items}}}"
    return repr(value)


# --- validation -------------------------------------------------------------------------


def _integer(minimum: int, what: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if isinstance(value, int) and not isinstance(value, bool) and value >= minimum:
            return None
        return f"{erlang_term(value)} is not a valid {what}"
    return check


def _string(what: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if isinstance(value, str) else f"{erlang_term(value)} is not a valid {what}"
    return check


def _choice(choices: tuple[Any, ...], what: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if (isinstance(value, str) or type(value) is int) and value in choices:
            return None
        return f"{erlang_term(value)} is not a valid {what}"
    return check


def _anything(value: Any) -> str | None:
    return None


_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "alternate-exchange": _string("alternate exchange name"),
    "consumer-timeout": _integer(0, "consumer timeout"),
    "dead-letter-exchange": _string("dead letter exchange name"),
    "dead-letter-routing-key": _string("dead letter routing key"),
    "dead-letter-strategy": _choice(("at-most-once", "at-least-once"),
                                    "dead letter strategy"),
    "delivery-limit": _integer(0, "delivery limit"),
    "expires": _integer(1, "queue expiry"),
    "initial-cluster-size": _integer(0, "cluster size"),
    "max-in-memory-bytes": _integer(0, "maximum memory in bytes"),
    "max-in-memory-length": _integer(0, "maximum memory in bytes"),
    "max-length": _integer(0, "maximum length"),
    "max-length-bytes": _integer(0, "maximum length in bytes"),
    "message-ttl": _integer(0, "message TTL"),
    "overflow": _choice(("drop-head", "reject-publish", "reject-publish-dlx"),
                        "overflow value"),
    "queue-leader-locator": _choice(("client-local", "balanced", "random", "least-leaders"),
                                    "queue leader locator value"),
    "queue-mode": _choice(("default", "lazy"), "queue-mode value"),
    "queue-version": _choice((1, 2), "queue version"),
    **{key: _anything for key in NO_EFFECT_KEYS},
}


def _definition_problem(definition: Any, operator: bool) -> str | None:
    if definition in ({}, []):
        return "no policy provided"
    if not isinstance(definition, dict):
        return f"definition must be a dictionary: {erlang_term(definition)}"
    allowed = OPERATOR_KEYS if operator else _CHECKS
    unknown = []
    for key in sorted(definition):
        if key not in allowed:
            unknown.append(key)
            continue
        problem = _CHECKS[key](definition[key])
        if problem is not None:
            return problem
    if unknown:
        terms = ",".join(f"{{{erlang_term(key)},{erlang_term(definition[key])}}}"
                         for key in unknown)
        return f"[{terms}] are not recognised policy settings"
    return None


# --- the policy -------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Policy:
    """One policy (or operator policy) of one vhost, validated."""

    vhost: str
    name: str
    pattern: str
    apply_to: str
    priority: int | float
    definition: dict[str, Any]
    operator: bool = False
    regex: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "regex", re.compile(self.pattern))

    @property
    def kind(self) -> str:
        """Its kind in the store and in errors: "policy" or "operator_policy"."""
        return "operator_policy" if self.operator else "policy"

    def to_json(self) -> dict[str, Any]:
        """As RabbitMQ exports it (and as the store keeps it)."""
        return {"vhost": self.vhost, "name": self.name, "pattern": self.pattern,
                "apply-to": self.apply_to, "definition": self.definition,
                "priority": self.priority}

    def same_as(self, other: Policy | None) -> bool:
        """Identical in every field (so setting it again changes nothing)."""
        return other is not None and other.operator == self.operator and _canonical(
            other.to_json()) == _canonical(self.to_json())

    def matches_queue(self, name: str, queue_type: str) -> bool:
        apply_to = self.apply_to
        if apply_to not in ("all", "queues") and apply_to != QUEUE_TYPE_APPLY_TO.get(queue_type):
            return False
        unsupported = UNSUPPORTED.get(queue_type, UNSUPPORTED["classic"])
        if not unsupported.isdisjoint(self.definition):
            return False
        return self.regex.search(name) is not None

    def matches_exchange(self, name: str) -> bool:
        return self.apply_to in ("all", "exchanges") and self.regex.search(name) is not None


def _canonical(value: dict[str, Any]) -> str:
    return json.dumps(value, sort_keys=True)


def make_policy(vhost: str, name: str, pattern: Any, definition: Any, priority: Any = 0,
                apply_to: Any = "all", operator: bool = False) -> Policy:
    """A validated policy; PolicyError with RabbitMQ's texts (every fault found, in
    RabbitMQ's order) otherwise."""
    problems = []
    if not isinstance(name, str) or not name:
        problems.append("policy name must be a non-empty string")
    definition_problem = _definition_problem(definition, operator)
    if definition_problem is not None:
        problems.append(definition_problem)
    if apply_to not in APPLY_TO:
        problems.append(
            f"apply-to '{apply_to}' unrecognised; should be one of: 'queues', "
            "'classic_queues',  'quorum_queues', 'streams', 'exchanges', or 'all'")
    if not isinstance(pattern, str):
        problems.append(f"pattern should be a binary but was {erlang_term(pattern)}")
    else:
        try:
            re.compile(pattern)
        except re.error as exc:
            problems.append(f"pattern should be regular expression but is invalid: {exc}")
    if isinstance(priority, bool) or not isinstance(priority, int | float):
        problems.append(f"priority should be a number, actually was {erlang_term(priority)}")
    if problems:
        raise PolicyError("\n".join(problems))
    return Policy(vhost, name, pattern, apply_to, priority, dict(definition), operator)


def warn_no_effect(policy: Policy) -> None:
    """Log the keys of a policy that are accepted but do nothing here."""
    ignored = sorted(key for key in policy.definition if key in NO_EFFECT_KEYS)
    if ignored:
        log.warning("%s '%s' in vhost '%s': %s accepted but has no effect (no mirroring "
                    "or federation in this broker)", policy.kind.replace("_", " "),
                    policy.name, policy.vhost, ", ".join(ignored))


# --- matching and merging ---------------------------------------------------------------


def _best(candidates: Iterable[Policy]) -> Policy | None:
    best = None
    for policy in candidates:
        if best is None or policy.priority > best.priority or (
                policy.priority == best.priority and policy.name < best.name):
            best = policy
    return best


def match_queue(policies: Iterable[Policy], name: str, queue_type: str) -> Policy | None:
    """The policy that applies to a queue: the matching one of highest priority (equal
    priorities: the first by name)."""
    return _best(p for p in policies if p.matches_queue(name, queue_type))


def match_exchange(policies: Iterable[Policy], name: str) -> Policy | None:
    """The policy that applies to an exchange, chosen as `match_queue` does."""
    return _best(p for p in policies if p.matches_exchange(name))


def effective_definition(policy: Policy | None, operator_policy: Policy | None
                         ) -> dict[str, Any]:
    """The settings in force from a policy and an operator policy (RabbitMQ's
    merge_operator_definitions): keys of either; where both set a numeric cap, the
    smaller value."""
    merged = dict(policy.definition) if policy is not None else {}
    if operator_policy is not None:
        for key, value in operator_policy.definition.items():
            current = merged.get(key)
            merged[key] = value if current is None else min(current, value)
    return dict(sorted(merged.items()))
