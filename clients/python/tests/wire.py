"""Builders of the guard's records for the tests, in their wire form."""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

#: 2025-08-11T00:09:30.120Z in ms since the Unix epoch.
WALL_MS = 1_754_870_970_120
WALL_TEXT = "2025-08-11T00:09:30.120Z"


def scope(strategy_id: Optional[str] = None) -> Dict[str, Any]:
    if strategy_id is None:
        return {"kind": "global"}
    return {"kind": "strategy", "strategy_id": strategy_id}


def command(command_id: str, action: str, strategy_id: Optional[str] = None, rule: str = "operator") -> Dict[str, Any]:
    return {
        "command_id": command_id,
        "action": action,
        "scope": scope(strategy_id),
        "rule": rule,
        "trigger": f"trigger-of-{command_id}",
        "evidence": [],
        "reason": "test",
        "event_ts": "2025-08-11T00:09:30Z",
        "decided_at": "2025-08-11T00:09:30.100Z",
        "policy_version": "p-test",
    }


def pause_state(
    command_id: str, mode: str, strategy_id: Optional[str] = None, reasons: Sequence[str] = ()
) -> Dict[str, Any]:
    return {
        "scope": scope(strategy_id),
        "mode": mode,
        "reasons": sorted(reasons),
        "since": "2025-08-11T00:09:30Z",
        "command_id": command_id,
        "policy_version": "p-test",
    }


def heartbeat(active: bool = True, instance: str = "guard-1") -> Dict[str, Any]:
    return {
        "instance": instance,
        "ts": "2025-08-11T00:09:30.120Z",
        "active": active,
        "policy_version": "p-test",
        "paused_scopes": 0,
    }
