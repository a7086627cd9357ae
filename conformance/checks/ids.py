"""Identifiers carry the glossary's prefixes (seed 004 "ID Prefixes")."""

from __future__ import annotations

from . import CheckResult, Context, check
from ._util import describe, harvest_ids

PREFIXES = {
    "referral_id": "ref_",
    "patient_id": "ptn_",
    "prescriber_id": "pres_",
    "appointment_id": "appt_",
    "event_id": "evt_",
    "partner_id": "ptr_",
}


@check(
    "ids.prefixes",
    "Every id in a response carries its glossary prefix (ref_, ptn_, pres_, appt_, evt_, ptr_)",
    ["GLO-ID-001"],
    phase="observe",
)
def prefixes(ctx: Context, res: CheckResult) -> None:
    seen = 0
    reported: set[str] = set()
    for ex in ctx.client.exchanges:
        if ex.status is None or not 200 <= ex.status < 300 or ex.json is None:
            continue
        for key, values in harvest_ids(ex.json).items():
            prefix = PREFIXES.get(key)
            if prefix is None:
                continue
            for v in values:
                seen += 1
                if v.startswith(prefix):
                    res.ok()
                elif key not in reported:
                    reported.add(key)
                    res.fail(f"{describe(ex)}: {key} {v!r} does not start with {prefix}", ex)
    if not seen:
        res.skip("no identifier was observed in a successful response")
