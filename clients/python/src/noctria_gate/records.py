"""The records the guard publishes for the gateways (CONTRACT §1.6, §1.8) and the
acknowledgement a gateway owes (§1.7), parsed from their JSON form.

Only the fields the gate needs are read; unknown fields are ignored, so a guard that
adds a field breaks no gateway.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping, Tuple, Union

from .errors import InvalidRecord
from .scope import Scope
from .verdict import Mode

#: A command's action → the scope's new mode.
_MODE_OF_ACTION = {"pause": Mode.PAUSED, "reduce_only": Mode.REDUCE_ONLY, "resume": Mode.RUNNING}

#: The reason a command without a `rule` carries: it still moves its scope.
UNKNOWN_RULE = "unknown"


@dataclass(frozen=True)
class PauseState:
    """A `guard_pause_state` record: one scope's present mode."""

    scope: Scope
    mode: Mode
    reasons: Tuple[str, ...]
    command_id: str


@dataclass(frozen=True)
class GuardCommand:
    """A `guard_command`: the scope's new mode, and the rule that caused it."""

    command_id: str
    mode: Mode
    scope: Scope
    rule: str


@dataclass(frozen=True)
class Heartbeat:
    """A `guard_heartbeat`: a guard instance is alive; only an active one's counts."""

    instance: str
    active: bool


def decode(payload: Union[bytes, str, None]) -> Mapping[str, Any]:
    """The JSON object a Kafka record carries.

    Raises:
        InvalidRecord: no payload, not JSON, or not an object.
    """
    if payload is None:
        raise InvalidRecord("a record without a value")
    try:
        value = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as err:
        raise InvalidRecord(f"not JSON: {err}") from None
    if not isinstance(value, dict):
        raise InvalidRecord(f"a record must be a JSON object, not {type(value).__name__}")
    return value


def pause_state(record: Mapping[str, Any]) -> PauseState:
    """Parses a `guard_pause_state` record.

    Raises:
        InvalidRecord: `scope`, `mode` or `command_id` missing or wrong, or `reasons`
            not a list of strings.
    """
    _object(record)
    mode = record.get("mode")
    try:
        parsed_mode = Mode(mode)
    except ValueError:
        raise InvalidRecord(f"mode must be running, reduce_only or paused, not {mode!r}") from None
    reasons = record.get("reasons", [])
    if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
        raise InvalidRecord(f"reasons must be a list of rule names, not {reasons!r}")
    return PauseState(
        scope=Scope.from_wire(record.get("scope")),
        mode=parsed_mode,
        reasons=tuple(reasons),
        command_id=_id(record),
    )


def guard_command(record: Mapping[str, Any]) -> GuardCommand:
    """Parses a `guard_command`. A command without a `rule` still counts (its reason
    reads ``unknown``): a pause must not be lost to a missing label.

    Raises:
        InvalidRecord: `command_id`, `action` or `scope` missing or wrong.
    """
    _object(record)
    action = record.get("action")
    if action not in _MODE_OF_ACTION:
        raise InvalidRecord(f"action must be pause, reduce_only or resume, not {action!r}")
    rule = record.get("rule")
    return GuardCommand(
        command_id=_id(record),
        mode=_MODE_OF_ACTION[action],
        scope=Scope.from_wire(record.get("scope")),
        rule=rule if isinstance(rule, str) and rule else UNKNOWN_RULE,
    )


def heartbeat(record: Mapping[str, Any]) -> Heartbeat:
    """Parses a `guard_heartbeat`.

    Raises:
        InvalidRecord: `active` missing or not a boolean (such a heartbeat keeps no gate
            open).
    """
    _object(record)
    active = record.get("active")
    if not isinstance(active, bool):
        raise InvalidRecord(f"active must be true or false, not {active!r}")
    instance = record.get("instance")
    return Heartbeat(instance=instance if isinstance(instance, str) else "", active=active)


def _object(record: Any) -> None:
    if not isinstance(record, Mapping):
        raise InvalidRecord(f"a record must be a JSON object, not {type(record).__name__}")


def _id(record: Mapping[str, Any]) -> str:
    command_id = record.get("command_id")
    if not isinstance(command_id, str) or not command_id:
        raise InvalidRecord(f"command_id must be a non-empty string, not {command_id!r}")
    return command_id
