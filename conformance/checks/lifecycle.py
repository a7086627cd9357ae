"""Every status change observed (responses, status histories, webhooks) is legal under the spec's x-lifecycle."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from ..http import Exchange
from ..spec import Lifecycle, Spec
from . import CheckResult, Context, check


@dataclass
class Observation:
    lifecycle: Lifecycle
    object_id: str
    status: str
    at: float
    source: str  # "response" | "webhook"
    exchange: Exchange | None
    history: list[str] | None = None


def _walk(
    spec: Spec,
    instance: Any,
    schema: Any,
    parent_id: str | None,
    out: list[tuple[Lifecycle, str, dict]],
    depth: int = 0,
) -> None:
    if depth > 10 or schema is None:
        return
    if isinstance(instance, dict):
        own_id = next((v for k, v in instance.items() if k.endswith("_id") and isinstance(v, str)), None)
        lc = spec.lifecycle_for_schema(schema)
        if lc is not None and isinstance(instance.get(lc.property), str):
            out.append((lc, own_id or f"{parent_id}#{lc.name}", instance))
        props = spec.object_properties(schema)
        for key, value in instance.items():
            if key in props:
                _walk(spec, value, props[key], own_id or parent_id, out, depth + 1)
    elif isinstance(instance, list):
        item = spec.item_schema(schema)
        for value in instance[:200]:
            _walk(spec, value, item, parent_id, out, depth + 1)


def observations(ctx: Context) -> list[Observation]:
    spec = ctx.spec
    obs: list[Observation] = []
    for ex in ctx.client.exchanges:
        if ex.status is None or not 200 <= ex.status < 300 or ex.json is None:
            continue
        op = next(
            (o for o in spec.full_operations() if o.method == ex.method and o.path_regex().match(ex.path)),
            None,
        )
        if op is None:
            continue
        found: list[tuple[Lifecycle, str, dict]] = []
        _walk(spec, ex.json, op.response_schema(ex.status), None, found)
        for lc, oid, inst in found:
            hist = inst.get("status_history") if lc.property == "status" else None
            history = (
                [h.get("status") for h in hist if isinstance(h, dict)] if isinstance(hist, list) else None
            )
            obs.append(Observation(lc, oid, inst[lc.property], ex.at, "response", ex, history))
    if ctx.receiver is not None:
        for d in ctx.receiver.deliveries():
            payload = d.json
            if not isinstance(payload, dict):
                continue
            et = str(payload.get("event_type"))
            lc = spec.lifecycle_for_event(et)
            if lc is None:
                continue
            oid = next(
                (
                    v
                    for k, v in payload.items()
                    if k.endswith("_id") and k != "event_id" and isinstance(v, str)
                ),
                None,
            )
            if oid is None:
                continue
            obs.append(Observation(lc, oid, lc.events[et], d.received_at, "webhook", d.as_exchange()))
    return obs


@check(
    "lifecycle.transitions",
    "Observed status changes and status histories are legal x-lifecycle transitions",
    ["REF-LC-001", "PRS-LC-001", "REF-ENV-002", "PRS-ENV-001", "GLO-LC-001", "PRS-RT-002"],
    phase="observe",
)
def transitions(ctx: Context, res: CheckResult) -> None:
    if not ctx.spec.lifecycles:
        res.skip("the spec declares no x-lifecycle")
        return
    obs = observations(ctx)
    if not obs:
        res.skip("no object with a lifecycle status was observed")
        return
    reported: set[str] = set()
    for o in obs:
        lc = o.lifecycle
        if o.status not in lc.states:
            key = f"unknown {lc.name} {o.status}"
            if key not in reported:
                reported.add(key)
                res.fail(
                    f"{o.object_id}: status {o.status!r} is not a state of the {lc.name} lifecycle", *_ex(o)
                )
            continue
        if o.history:
            for a, b in zip(o.history, o.history[1:], strict=False):
                if not lc.legal(a, b):
                    key = f"hist {lc.name} {a}->{b}"
                    if key not in reported:
                        reported.add(key)
                        res.fail(
                            f"{o.object_id}: status_history has {a} -> {b}, not a transition of {lc.name}",
                            *_ex(o),
                        )
                    break
            else:
                res.ok()
    by_obj: dict[tuple[str, str], list[Observation]] = {}
    for o in obs:
        by_obj.setdefault((o.lifecycle.name, o.object_id), []).append(o)
    for (_name, oid), seq in by_obj.items():
        seq.sort(key=lambda o: o.at)
        for prev, cur in itertools.pairwise(seq):
            lc = cur.lifecycle
            if (
                prev.status in lc.states
                and cur.status in lc.states
                and not lc.reachable(prev.status, cur.status)
            ):
                # Webhooks are at-least-once and may arrive late: only a move the lifecycle forbids both ways is wrong.
                late_webhook = "webhook" in (prev.source, cur.source) and lc.reachable(
                    cur.status, prev.status
                )
                if late_webhook:
                    continue
                res.fail(
                    f"{oid}: observed {prev.status} ({prev.source}) then {cur.status} ({cur.source}), which the "
                    f"{lc.name} lifecycle does not allow",
                    *_ex(prev),
                    *_ex(cur),
                )
            else:
                res.ok()


@check(
    "lifecycle.terminal",
    "Terminal states stay terminal",
    ["REF-LC-002", "PRS-LC-001", "REF-REF-006"],
    phase="observe",
)
def terminal(ctx: Context, res: CheckResult) -> None:
    obs = [o for o in observations(ctx) if o.source == "response"]
    if not obs:
        res.skip("no object with a lifecycle status was observed")
        return
    by_obj: dict[tuple[str, str], list[Observation]] = {}
    for o in obs:
        by_obj.setdefault((o.lifecycle.name, o.object_id), []).append(o)
        if o.history:
            terms = [i for i, s in enumerate(o.history) if s in o.lifecycle.terminal]
            if terms and terms[0] != len(o.history) - 1:
                res.fail(
                    f"{o.object_id}: status_history continues after terminal {o.history[terms[0]]!r}: {o.history}",
                    *_ex(o),
                )
    for (_name, oid), seq in by_obj.items():
        seq.sort(key=lambda o: o.at)
        term = next((o for o in seq if o.status in o.lifecycle.terminal), None)
        if term is None:
            res.ok()
            continue
        later = [o for o in seq if o.at > term.at and o.status != term.status]
        if later:
            res.fail(
                f"{oid}: left terminal state {term.status!r} for {later[0].status!r}",
                *_ex(term),
                *_ex(later[0]),
            )
        else:
            res.ok()


def _ex(o: Observation) -> list[Exchange]:
    return [o.exchange] if o.exchange is not None else []
