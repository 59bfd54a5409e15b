"""What a strategy may do now: a scope's mode (CONTRACT §2) and the gate's answer."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Tuple


class Mode(str, Enum):
    """A scope's mode, with its wire name as value."""

    #: Trading as usual.
    RUNNING = "running"
    #: Only orders that reduce a position.
    REDUCE_ONLY = "reduce_only"
    #: No orders at all.
    PAUSED = "paused"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Verdict:
    """The answer of `may_trade`: the mode in force for a strategy and why.

    ``reasons`` are the rule names of the scopes that decide it (global first, then the
    strategy's own, each once), or why the gate fails closed (``no_state``,
    ``guard_silent``, ``follower_stopped``).
    """

    mode: Mode
    reasons: Tuple[str, ...] = ()

    @property
    def paused(self) -> bool:
        """No order may go out."""
        return self.mode is Mode.PAUSED

    @property
    def reduce_only(self) -> bool:
        """Only orders that reduce the strategy's position may go out."""
        return self.mode is Mode.REDUCE_ONLY

    def allows(self, reduces_position: bool) -> bool:
        """Whether an order may go out: any order while running, one that only reduces
        the position (brings it closer to flat, never past it) while reduce-only, none
        while paused."""
        if self.mode is Mode.RUNNING:
            return True
        return self.mode is Mode.REDUCE_ONLY and reduces_position


#: Trade as usual.
RUNNING = Verdict(Mode.RUNNING)
