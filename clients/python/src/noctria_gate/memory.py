"""The bounded memory of command ids the gate has seen (a repeat must change nothing).

A guard re-publishes, after a restart or a takeover, exact repeats of decisions it had
already published (CONTRACT §1.6, docs/LIVE.md): the messages of its outbox that the
broker had not confirmed, followed by everything decided after them. Those are recent
decisions, a handful per restart. The gate remembers the newest ``capacity`` ids it has
seen on either topic (default 65,536: about 11 MB with the guard's 36-character ids)
and forgets the oldest first.
"""

from __future__ import annotations

from collections import OrderedDict


class SeenIds:
    """Command ids seen, oldest first, each with whether its acknowledgement is out."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"the gate must remember at least one command id, not {capacity}")
        self.capacity = capacity
        self._ids: "OrderedDict[str, bool]" = OrderedDict()
        self.forgotten = 0

    def __contains__(self, command_id: str) -> bool:
        return command_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def remember(self, command_id: str) -> None:
        """Remembers a new id (its acknowledgement not yet out); forgets the oldest id
        past the capacity."""
        if command_id in self._ids:
            return
        self._ids[command_id] = False
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
            self.forgotten += 1

    def take_ack(self, command_id: str) -> bool:
        """True once per remembered id: the first caller sends its acknowledgement."""
        if command_id not in self._ids:
            self.remember(command_id)
        if self._ids.get(command_id, True):
            return False
        self._ids[command_id] = True
        return True
