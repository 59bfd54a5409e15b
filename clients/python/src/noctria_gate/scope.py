"""What a pause applies to (CONTRACT §1.5): the global scope or one strategy's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from .errors import InvalidRecord

#: The key of the global scope.
GLOBAL_KEY = "global"


@dataclass(frozen=True)
class Scope:
    """`{"kind": "global"}` (``strategy_id`` is None) or
    `{"kind": "strategy", "strategy_id": ID}`."""

    strategy_id: Optional[str] = None

    @property
    def is_global(self) -> bool:
        """Whether this is the global scope."""
        return self.strategy_id is None

    @property
    def key(self) -> str:
        """`global` or `strategy:ID`, the form of a Kafka key or a map key."""
        return GLOBAL_KEY if self.strategy_id is None else f"strategy:{self.strategy_id}"

    @classmethod
    def from_wire(cls, value: Any) -> "Scope":
        """Parses the JSON form.

        Raises:
            InvalidRecord: not a scope object, an unknown kind, or an empty strategy id.
        """
        if not isinstance(value, dict):
            raise InvalidRecord(f"scope must be an object, not {value!r}")
        kind = value.get("kind")
        if kind == "global":
            return GLOBAL
        if kind == "strategy":
            strategy_id = value.get("strategy_id")
            if not isinstance(strategy_id, str) or not strategy_id:
                raise InvalidRecord(f"a strategy scope needs a non-empty strategy_id, not {strategy_id!r}")
            return cls(strategy_id)
        raise InvalidRecord(f"scope kind must be 'global' or 'strategy', not {kind!r}")

    def to_wire(self) -> dict:
        """The JSON form."""
        if self.strategy_id is None:
            return {"kind": "global"}
        return {"kind": "strategy", "strategy_id": self.strategy_id}


#: The global scope.
GLOBAL = Scope()
