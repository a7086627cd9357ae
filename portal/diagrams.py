"""Mermaid diagrams generated from the spec's ``x-lifecycle`` extensions (correct by construction).

Every state and every transition of a lifecycle appears in its state diagram; the referral sequence is the
referral lifecycle's path from its initial state to ``delivered`` with the webhook each step emits.
"""

from __future__ import annotations

import re
from typing import Any

# States a "happy path" avoids (the sequence diagram shows the normal route, not the failure branches).
UNHAPPY = (
    "exception",
    "fail",
    "denied",
    "denial",
    "cancel",
    "expire",
    "reject",
    "refund",
    "dead",
    "void",
    "returned",
    "error",
)


def _sid(state: str) -> str:
    return "s_" + re.sub(r"[^A-Za-z0-9_]", "_", state)


def _label(text: str) -> str:
    # Mermaid labels: keep them to characters that cannot break the grammar.
    return re.sub(r"[;#{}<>\"]", " ", str(text)).strip()


def states_of(lc: dict[str, Any]) -> list[str]:
    """Every state of a lifecycle: declared states, then any only named by initial/terminal/transitions."""
    seen: list[str] = []

    def add(s: Any) -> None:
        if isinstance(s, str) and s not in seen:
            seen.append(s)

    for s in lc.get("states") or {}:
        add(s)
    add(lc.get("initial"))
    for s in lc.get("terminal") or []:
        add(s)
    for t in lc.get("transitions") or []:
        add(t.get("from"))
        add(t.get("to"))
    return seen


def _initials(lc: dict[str, Any]) -> list[str]:
    init = lc.get("initial")
    if isinstance(init, list):
        return [str(s) for s in init]
    return [str(init)] if init else []


def state_diagram(lc: dict[str, Any]) -> str:
    """Mermaid ``stateDiagram-v2`` source: every state, every transition labelled with its event."""
    # Small machines read best left to right; dense ones top to bottom (they stay legible at page width).
    direction = "LR" if len(lc.get("transitions") or []) <= 6 else "TB"
    lines = ["stateDiagram-v2", f"    direction {direction}"]
    for s in states_of(lc):
        lines.append(f'    state "{_label(s)}" as {_sid(s)}')
    for s in _initials(lc):
        lines.append(f"    [*] --> {_sid(s)}")
    for t in lc.get("transitions") or []:
        edge = f"    {_sid(t['from'])} --> {_sid(t['to'])}"
        if t.get("event"):
            edge += f" : {_label(t['event'])}"
        lines.append(edge)
    terminal = [str(s) for s in lc.get("terminal") or []]
    for s in terminal:
        lines.append(f"    {_sid(s)} --> [*]")
    if terminal:
        lines.append("    classDef terminal fill:#eef2ff,stroke:#4338ca,stroke-width:2px")
        lines.append("    class " + ",".join(_sid(s) for s in terminal) + " terminal")
    return "\n".join(lines) + "\n"


def happy_path(lc: dict[str, Any], target: str | None = None) -> list[dict[str, Any]]:
    """The transitions of the longest simple path from the initial state to ``target`` avoiding failure states.

    ``target`` defaults to ``delivered`` when the lifecycle has it, else its first terminal state.
    """
    states = states_of(lc)
    terminal = [str(s) for s in lc.get("terminal") or []]
    if target is None:
        target = "delivered" if "delivered" in states else (terminal[0] if terminal else None)
    if target is None:
        return []
    out_edges: dict[str, list[dict[str, Any]]] = {}
    for t in lc.get("transitions") or []:
        out_edges.setdefault(t["from"], []).append(t)

    def ok(state: str) -> bool:
        return state == target or not any(word in state for word in UNHAPPY)

    best: list[dict[str, Any]] = []

    def dfs(state: str, path: list[dict[str, Any]], visited: set[str]) -> None:
        nonlocal best
        if state == target:
            if len(path) > len(best):
                best = list(path)
            return
        for t in out_edges.get(state, []):
            nxt = t["to"]
            if nxt in visited or not ok(nxt) or (nxt in terminal and nxt != target):
                continue
            visited.add(nxt)
            path.append(t)
            dfs(nxt, path, visited)
            path.pop()
            visited.discard(nxt)

    for init in _initials(lc):
        dfs(init, [], {init})
    return best


def referral_sequence(lc: dict[str, Any], create_path: str = "/partner/referrals") -> str:
    """Mermaid ``sequenceDiagram``: a referral from creation to delivery, one webhook per emitted event."""
    path = happy_path(lc)
    initial = (_initials(lc) or ["created"])[0]
    lines = [
        "sequenceDiagram",
        "    autonumber",
        "    participant P as Partner backend",
        "    participant C as Customer",
        "    participant S as Stealth Health API",
        "    participant W as Partner webhook endpoint",
        f"    P->>S: POST {create_path} (partner_reference, product_category)",
        f"    S-->>P: 201 Created (referral_id, enrollment_url, status {_label(initial)})",
        "    P->>C: Send the customer to enrollment_url",
        "    C->>S: Completes the co-branded intake (and pays if required)",
    ]
    for t in path:
        lines.append(f"    Note over S: {_label(t['from'])} → {_label(t['to'])}")
        if t.get("event"):
            lines.append(f"    S->>W: POST {_label(t['event'])} (X-Stealth-Signature)")
            lines.append("    W-->>S: 2xx within 10 s (retried on failure)")
    lines.append("    P->>S: GET /partner/referrals/{referral_id}")
    final = path[-1]["to"] if path else initial
    lines.append(f"    S-->>P: 200 OK (status {_label(final)})")
    return "\n".join(lines) + "\n"
