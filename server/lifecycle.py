"""State machines read from the spec's ``x-lifecycle`` (Referral.status, Payment.status, Fulfillment.status).

The spec is the single definition; the server refuses any transition it does not list.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from server.spec import SpecIndex


class IllegalTransition(Exception):
    """A transition the lifecycle does not allow; it is never stored."""

    def __init__(self, lifecycle: str, from_state: str | None, to_state: str) -> None:
        super().__init__(f"{lifecycle}: {from_state} -> {to_state} is not a legal transition")
        self.lifecycle = lifecycle
        self.from_state = from_state
        self.to_state = to_state


@dataclass(frozen=True)
class Transition:
    from_state: str
    to_state: str
    event: str | None


@dataclass(frozen=True)
class Lifecycle:
    name: str
    property: str
    initials: tuple[str, ...]
    terminal: frozenset[str]
    states: tuple[str, ...]
    transitions: tuple[Transition, ...]

    @classmethod
    def from_extension(cls, ext: dict[str, Any]) -> Lifecycle:
        transitions = tuple(
            Transition(str(t["from"]), str(t["to"]), t.get("event")) for t in ext.get("transitions", [])
        )
        initial = ext["initial"]
        lc = cls(
            name=str(ext["name"]),
            property=str(ext.get("property", "status")),
            initials=tuple(str(i) for i in initial) if isinstance(initial, list) else (str(initial),),
            terminal=frozenset(ext.get("terminal", [])),
            states=tuple(ext.get("states", {}).keys()),
            transitions=transitions,
        )
        unknown = {s for t in transitions for s in (t.from_state, t.to_state)} | set(lc.initials)
        unknown -= set(lc.states)
        if unknown:
            raise ValueError(f"x-lifecycle {lc.name}: transitions name unknown states {sorted(unknown)}")
        return lc

    @property
    def initial(self) -> str:
        """The state objects are created in (the first of ``initial`` when the spec lists several entry states)."""
        return self.initials[0]

    def transition(self, from_state: str, to_state: str) -> Transition:
        for t in self.transitions:
            if t.from_state == from_state and t.to_state == to_state:
                return t
        raise IllegalTransition(self.name, from_state, to_state)

    def is_legal(self, from_state: str, to_state: str) -> bool:
        return any(t.from_state == from_state and t.to_state == to_state for t in self.transitions)

    def is_terminal(self, state: str) -> bool:
        return state in self.terminal

    def successors(self, state: str) -> list[str]:
        return [t.to_state for t in self.transitions if t.from_state == state]

    def reachable(self, from_state: str) -> set[str]:
        seen: set[str] = set()
        queue = deque([from_state])
        while queue:
            for nxt in self.successors(queue.popleft()):
                if nxt not in seen:
                    seen.add(nxt)
                    queue.append(nxt)
        return seen

    def path(self, from_state: str, to_state: str) -> list[Transition] | None:
        """Shortest chain of legal transitions from one state to another (None if unreachable)."""
        if from_state == to_state:
            return []
        prev: dict[str, Transition] = {}
        queue = deque([from_state])
        while queue:
            state = queue.popleft()
            for t in self.transitions:
                if t.from_state == state and t.to_state not in prev and t.to_state != from_state:
                    prev[t.to_state] = t
                    if t.to_state == to_state:
                        chain = [t]
                        while chain[0].from_state != from_state:
                            chain.insert(0, prev[chain[0].from_state])
                        return chain
                    queue.append(t.to_state)
        return None


class Lifecycles:
    """Every ``x-lifecycle`` in the spec, by its name."""

    def __init__(self, spec: SpecIndex) -> None:
        self.by_name: dict[str, Lifecycle] = {}
        for schema in ((spec.document.get("components") or {}).get("schemas") or {}).values():
            if isinstance(schema, dict) and isinstance(schema.get("x-lifecycle"), dict):
                lc = Lifecycle.from_extension(schema["x-lifecycle"])
                self.by_name[lc.name] = lc

    def __getitem__(self, name: str) -> Lifecycle:
        try:
            return self.by_name[name]
        except KeyError:
            raise KeyError(f"the spec has no x-lifecycle named {name!r}") from None

    @property
    def referral(self) -> Lifecycle:
        return self["referral"]

    @property
    def payment(self) -> Lifecycle:
        return self["payment"]

    @property
    def fulfillment(self) -> Lifecycle:
        return self["fulfillment"]
