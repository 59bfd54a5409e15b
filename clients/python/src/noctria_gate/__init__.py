"""The order gateways' side of a guard pause (CONTRACT §6), for Python gateways.

Data flow::

    guard_pause_state (from the beginning) ─┐
    guard_command     (from the end)       ─┼─> Follower (thread) ─lock─> Gate ──> may_trade(strategy)
    guard_heartbeat   (from the end)       ─┘         │                     │       (gateway threads)
                                                      └──── guard_ack <──── acks owed, events

Modules, one idea each:

* `gate` — `Gate`, the pure core: folds the records, answers `may_trade`, fails closed,
  drops repeats, owes acknowledgements, reports events. No I/O, time passed in.
* `follower` — `Follower`, the confluent-kafka shell: assigns partitions, feeds the gate,
  publishes acknowledgements, serves `may_trade` to the gateway's threads.
* `records` — the wire records, parsed (unknown fields ignored).
* `verdict` — `Mode` and `Verdict`, what a strategy may do.
* `scope` — `Scope`, global or one strategy, and its key.
* `memory` — `SeenIds`, the bounded memory of command ids.
* `topics` — `Topics`, the topic names (with an optional prefix).
* `wire_time` — milliseconds to the wire's UTC time text.
"""

from .errors import InvalidRecord
from .follower import FOLLOWER_STOPPED, Follower
from .gate import (
    ALL_SCOPES,
    DEFAULT_MAX_SILENCE_MS,
    DEFAULT_REMEMBERED_IDS,
    GUARD_SILENT,
    NO_STATE,
    Gate,
    Output,
    ScopeMode,
)
from .scope import GLOBAL, Scope
from .topics import Topics
from .verdict import RUNNING, Mode, Verdict

__all__ = [
    "ALL_SCOPES",
    "DEFAULT_MAX_SILENCE_MS",
    "DEFAULT_REMEMBERED_IDS",
    "FOLLOWER_STOPPED",
    "GLOBAL",
    "GUARD_SILENT",
    "NO_STATE",
    "RUNNING",
    "Follower",
    "Gate",
    "InvalidRecord",
    "Mode",
    "Output",
    "Scope",
    "ScopeMode",
    "Topics",
    "Verdict",
]
