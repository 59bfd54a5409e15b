"""The pure core: the gate's view of the guard (CONTRACT §6).

`Gate` folds what the guard publishes into every scope's mode and answers
`Gate.may_trade` from memory. No I/O, no clock, no logging: the shell (`Follower`)
passes every record in together with two times — ``now_ms``, the gateway's monotonic
clock in milliseconds (for silence), and ``wall_ms``, the wall clock in milliseconds
since the Unix epoch (only to stamp acknowledgements and events). Every input returns
an `Output`: the acknowledgements the gateway owes and the events to log.

Decisions the gate keeps, and why:

* **Fails closed.** Every strategy is paused while the gate has no state (the
  pause-state topic not read to its end: ``no_state``) or while the newest heartbeat of
  an *active* guard is more than ``max_silence_ms`` old, or there was none
  (``guard_silent``). Exactly ``max_silence_ms`` of silence is still open.
* **One decision, two records.** A `guard_command` and a `guard_pause_state` record
  with the same ``command_id`` are the same decision: whichever comes first moves the
  scope; the record, when it comes second, only brings the full reasons (the command
  carries its rule alone). So both orders end with the record's reasons.
* **Repeats change nothing.** A command id the gate has already seen (on either topic)
  never moves a scope again, so a guard's re-publication after a restart cannot move a
  scope back to an older mode. The memory is bounded (`SeenIds`, default 65,536 ids):
  an id forgotten, or one the gate never saw (decided before the gateway started and
  compacted out of the pause-state topic), is taken for a new decision.
* **Commands wait for the state.** A command that arrives while the pause-state topic is
  still being read is applied when the read is done, after every record read: a
  pause-state record of an older decision read during the catch-up then cannot
  override a newer command that happened to arrive first.
* **Acknowledgements** are owed once per command id, and only once the gate has state
  (before that nothing is in force but the fail-closed pause): for every decision that
  comes into force (by its command or its record, whichever comes first), for a command
  that comes after a newer decision of its scope (the guard awaits an ack of every
  command it decided, and the gateway has a newer state in force), and, when the
  catch-up ends, for the decision in force in every scope. A record read during the
  catch-up and overtaken within it was never in force here and is not acknowledged
  then (its command, if it comes, is). A repeat owes nothing.
* **Events** report changes of a scope's *effective* mode. The gate failing closed is
  ``*`` ``paused`` with the reason; while it is closed every strategy is paused, so a
  scope's own mode changing then is not reported. When it opens again it reports ``*``
  ``running`` and then every scope the guard holds in another mode (global first, then
  the strategies by id), whether or not it changed while the gate was closed: a scope
  not named runs. While it is open, a scope whose own mode changes is reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from . import records
from .errors import InvalidRecord
from .memory import SeenIds
from .scope import Scope
from .verdict import RUNNING, Mode, Verdict
from .wire_time import utc_ms

#: CONTRACT §6: fail closed after this much silence of the active guard.
DEFAULT_MAX_SILENCE_MS = 3_000
#: Command ids remembered to drop repeats (`SeenIds`).
DEFAULT_REMEMBERED_IDS = 65_536
#: Why the gate fails closed: the pause-state topic has not been read to its end yet.
NO_STATE = "no_state"
#: Why the gate fails closed: no heartbeat of an active guard within ``max_silence_ms``.
GUARD_SILENT = "guard_silent"
#: The scope of the events of the gate failing closed and opening again.
ALL_SCOPES = "*"

#: A record as a parsed JSON object, or the Kafka record's value (bytes or text).
RecordInput = Union[Mapping[str, Any], bytes, str]

_NOT_REPORTED = object()  # the gate starts closed and says so at its first input
_OPEN = None  # what `Gate._reported` holds while the gate is open (else the closing reason)


@dataclass(frozen=True)
class ScopeMode:
    """A scope's mode as the gate knows it, and the decision that set it."""

    mode: Mode
    reasons: Tuple[str, ...]
    command_id: str


@dataclass
class Output:
    """What one input leaves the shell to do, in this order: publish ``acks`` on
    `guard_ack` (each keyed by its ``command_id``), then log ``events``."""

    acks: List[Dict[str, Any]] = field(default_factory=list)
    events: List[Dict[str, Any]] = field(default_factory=list)


class Gate:
    """The gateway's view of the guard: every scope's mode, whether the guard is heard."""

    def __init__(
        self,
        gateway: str,
        max_silence_ms: int = DEFAULT_MAX_SILENCE_MS,
        remembered_ids: int = DEFAULT_REMEMBERED_IDS,
    ) -> None:
        """A gate for the gateway named ``gateway`` (the name its acknowledgements carry).

        Raises:
            ValueError: an empty gateway name, a negative ``max_silence_ms`` or a
                ``remembered_ids`` below 1.
        """
        if not gateway:
            raise ValueError("a gateway needs a name: its acknowledgements carry it")
        if max_silence_ms < 0:
            raise ValueError(f"max_silence_ms must be >= 0, not {max_silence_ms}")
        self.gateway = gateway
        self.max_silence_ms = max_silence_ms
        self._seen = SeenIds(remembered_ids)
        self._has_state = False
        self._heard_ms: Optional[int] = None
        self._global: Optional[ScopeMode] = None
        self._strategies: Dict[str, ScopeMode] = {}
        self._waiting: List[records.GuardCommand] = []
        self._reported: object = _NOT_REPORTED
        self._counters: Dict[str, int] = dict.fromkeys(
            (
                "pause_states",
                "pause_states_applied",
                "pause_states_merged",
                "pause_states_known",
                "commands",
                "commands_applied",
                "commands_known",
                "heartbeats",
                "standby_heartbeats",
                "invalid_records",
                "acks_owed",
                "fail_closed_no_state",
                "fail_closed_guard_silent",
            ),
            0,
        )

    # --- inputs --------------------------------------------------------------------

    def on_pause_state(self, record: RecordInput, now_ms: int, wall_ms: int) -> Output:
        """A `guard_pause_state` record (CONTRACT §1.8): the scope's present mode.

        Raises:
            InvalidRecord: the record is not a pause state; nothing changed.
        """
        state = self._parse(records.pause_state, record)
        self._counters["pause_states"] += 1
        # The time first: a gate that fell silent reports so before this record's effect.
        out = self._report(now_ms, wall_ms, Output())
        current = self._get(state.scope)
        known = ScopeMode(state.mode, state.reasons, state.command_id)
        if state.command_id not in self._seen:
            self._seen.remember(state.command_id)
            self._counters["pause_states_applied"] += 1
            self._set(state.scope, known, wall_ms, out)
        elif current is not None and current.command_id == state.command_id:
            # The decision in force, first learnt from its command: take the full reasons.
            self._counters["pause_states_merged"] += 1
            self._set(state.scope, known, wall_ms, out)
        else:
            self._counters["pause_states_known"] += 1
        return out

    def on_command(self, record: RecordInput, now_ms: int, wall_ms: int) -> Output:
        """A `guard_command` (CONTRACT §1.6): the scope's new mode. While the gate has no
        state the command waits for the end of the catch-up.

        Raises:
            InvalidRecord: the record is not a guard command; nothing changed.
        """
        command = self._parse(records.guard_command, record)
        self._counters["commands"] += 1
        out = self._report(now_ms, wall_ms, Output())
        if self._has_state:
            self._command(command, wall_ms, out)
        else:
            self._waiting.append(command)
        return out

    def on_heartbeat(self, record: RecordInput, now_ms: int, wall_ms: int) -> Output:
        """A `guard_heartbeat`, received at ``now_ms``. Only an active guard's keeps the
        gate open; a standby's is counted and changes nothing.

        Raises:
            InvalidRecord: the record is not a heartbeat; nothing changed.
        """
        beat = self._parse(records.heartbeat, record)
        if beat.active:
            self._counters["heartbeats"] += 1
            if self._heard_ms is None or now_ms > self._heard_ms:
                self._heard_ms = now_ms
        else:
            self._counters["standby_heartbeats"] += 1
        return self._report(now_ms, wall_ms, Output())

    def caught_up(self, now_ms: int, wall_ms: int) -> Output:
        """The pause-state topic has been read to its end: from now on the gate answers
        from what it knows. Owes the acknowledgement of each scope's decision in force,
        then applies the commands that came in meanwhile; then reports the gate still
        closed (``guard_silent`` until an active guard is heard) or open, with every
        scope that is not running. Calling it again changes nothing."""
        out = Output()
        if not self._has_state:
            self._has_state = True
            for _scope, known in self._scopes():
                self._owe_ack(known.command_id, wall_ms, out)
            waiting, self._waiting = self._waiting, []
            for command in waiting:
                self._command(command, wall_ms, out)
        return self._report(now_ms, wall_ms, out)

    def tick(self, now_ms: int, wall_ms: int) -> Output:
        """The clock moved: reports the gate failing closed for silence (or opening)."""
        return self._report(now_ms, wall_ms, Output())

    # --- queries -------------------------------------------------------------------

    def may_trade(self, strategy_id: str, now_ms: int) -> Verdict:
        """What ``strategy_id`` may do at the gateway's clock ``now_ms``: paused while the
        gate fails closed or the global scope or the strategy's own is paused,
        reduce-only while either is reduce-only, else running."""
        closed = self.closed_reason(now_ms)
        if closed is not None:
            return Verdict(Mode.PAUSED, (closed,))
        scopes = [k for k in (self._global, self._strategies.get(strategy_id)) if k is not None]
        for mode in (Mode.PAUSED, Mode.REDUCE_ONLY):
            deciding = [k for k in scopes if k.mode is mode]
            if deciding:
                reasons: List[str] = []
                for known in deciding:
                    reasons.extend(r for r in known.reasons if r not in reasons)
                return Verdict(mode, tuple(reasons))
        return RUNNING

    def closed_reason(self, now_ms: int) -> Optional[str]:
        """Why the gate fails closed at ``now_ms`` (``no_state`` or ``guard_silent``), or
        None while it is open."""
        if not self._has_state:
            return NO_STATE
        if self._heard_ms is None or now_ms - self._heard_ms > self.max_silence_ms:
            return GUARD_SILENT
        return None

    @property
    def has_state(self) -> bool:
        """Whether the pause-state topic has been read to its end."""
        return self._has_state

    def scope_mode(self, scope: Union[Scope, str]) -> Optional[ScopeMode]:
        """A scope's mode and the decision that set it (a `Scope` or its key
        ``global`` / ``strategy:ID``); None for a scope the guard never decided on."""
        if isinstance(scope, str):
            if scope == "global":
                return self._global
            if scope.startswith("strategy:"):
                return self._strategies.get(scope[len("strategy:"):])
            return None
        return self._get(scope)

    def counters(self) -> Dict[str, int]:
        """How many records of each kind came in and what became of them."""
        out = dict(self._counters)
        out["remembered_ids"] = len(self._seen)
        out["forgotten_ids"] = self._seen.forgotten
        return out

    def state(self, now_ms: int) -> Dict[str, Any]:
        """Everything the gate knows, as JSON-ready data (for a status page or a log)."""
        return {
            "gateway": self.gateway,
            "has_state": self._has_state,
            "closed_reason": self.closed_reason(now_ms),
            "silent_for_ms": None if self._heard_ms is None else now_ms - self._heard_ms,
            "max_silence_ms": self.max_silence_ms,
            "commands_waiting": len(self._waiting),
            "scopes": {
                scope.key: {"mode": k.mode.value, "reasons": list(k.reasons), "command_id": k.command_id}
                for scope, k in self._scopes()
            },
            "counters": self.counters(),
        }

    # --- inside --------------------------------------------------------------------

    def _parse(self, parse, record):
        try:
            if not isinstance(record, Mapping):
                record = records.decode(record)
            return parse(record)
        except InvalidRecord:
            self._counters["invalid_records"] += 1
            raise

    def _command(self, command: records.GuardCommand, wall_ms: int, out: Output) -> None:
        if command.command_id in self._seen:
            # A repeat, or the decision already learnt from its pause-state record.
            self._counters["commands_known"] += 1
        else:
            self._seen.remember(command.command_id)
            self._counters["commands_applied"] += 1
            known = ScopeMode(command.mode, (command.rule,), command.command_id)
            self._set(command.scope, known, wall_ms, out)
        # The guard awaits every command it publishes; one overtaken during the
        # catch-up was applied too (and then overtaken), so it is acknowledged as well.
        self._owe_ack(command.command_id, wall_ms, out)

    def _set(self, scope: Scope, known: ScopeMode, wall_ms: int, out: Output) -> None:
        before = self._get(scope)
        if scope.strategy_id is None:
            self._global = known
        else:
            self._strategies[scope.strategy_id] = known
        if not self._has_state:
            return
        # Reported only while the gate is open: while it is closed every strategy is
        # paused whatever this scope says, and the opening names the scopes held.
        if self._reported is _OPEN and (before.mode if before else Mode.RUNNING) is not known.mode:
            out.events.append(self._event(scope, known, wall_ms))
        self._owe_ack(known.command_id, wall_ms, out)

    def _owe_ack(self, command_id: str, wall_ms: int, out: Output) -> None:
        if self._seen.take_ack(command_id):
            self._counters["acks_owed"] += 1
            out.acks.append({"command_id": command_id, "gateway": self.gateway, "ts": utc_ms(wall_ms)})

    def _report(self, now_ms: int, wall_ms: int, out: Output) -> Output:
        """Reports a change of failing closed: ``*`` paused with the reason when the gate
        closes (or its reason changes); ``*`` running when it opens, then every scope the
        guard holds in another mode (global first, strategies by id)."""
        closed = self.closed_reason(now_ms)
        if closed == self._reported:
            return out
        self._reported = closed
        if closed is not None:
            self._counters[f"fail_closed_{closed}"] += 1
        out.events.append(
            {
                "gateway": self.gateway,
                "scope": ALL_SCOPES,
                "mode": (Mode.RUNNING if closed is None else Mode.PAUSED).value,
                "command_id": None,
                "at": utc_ms(wall_ms),
                "reason": closed,
            }
        )
        if closed is None:
            if self._global is not None and self._global.mode is not Mode.RUNNING:
                out.events.append(self._event(Scope(), self._global, wall_ms))
            for strategy_id in sorted(self._strategies):
                known = self._strategies[strategy_id]
                if known.mode is not Mode.RUNNING:
                    out.events.append(self._event(Scope(strategy_id), known, wall_ms))
        return out

    def _event(self, scope: Scope, known: ScopeMode, wall_ms: int) -> Dict[str, Any]:
        return {
            "gateway": self.gateway,
            "scope": scope.key,
            "mode": known.mode.value,
            "command_id": known.command_id,
            "at": utc_ms(wall_ms),
        }

    def _get(self, scope: Scope) -> Optional[ScopeMode]:
        if scope.strategy_id is None:
            return self._global
        return self._strategies.get(scope.strategy_id)

    def _scopes(self):
        if self._global is not None:
            yield Scope(), self._global
        for strategy_id, known in self._strategies.items():
            yield Scope(strategy_id), known
