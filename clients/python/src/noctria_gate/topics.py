"""The names of the guard's topics a gateway uses (CONTRACT §1)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topics:
    """Where the guard publishes and where the gateway acknowledges."""

    #: Every scope's present mode (compacted, keyed by scope): read from the beginning.
    pause_state: str = "guard_pause_state"
    #: The guard's commands: followed from the end.
    command: str = "guard_command"
    #: The guard's sign of life: followed from the end.
    heartbeat: str = "guard_heartbeat"
    #: The gateways' acknowledgements (keyed by command id): written.
    ack: str = "guard_ack"

    @classmethod
    def with_prefix(cls, prefix: str) -> "Topics":
        """The default names with ``prefix`` in front (the guard's ``--topic-prefix``)."""
        return cls(
            pause_state=f"{prefix}guard_pause_state",
            command=f"{prefix}guard_command",
            heartbeat=f"{prefix}guard_heartbeat",
            ack=f"{prefix}guard_ack",
        )
