"""Redacted request/response and webhook payload logging, driven by the specs' ``x-phi`` marks.

The redaction maps of both APIs (Partner API, pharmacy API) are compiled once per process from the bundled
specs (:class:`server.redaction.PhiMap`). Nothing here ever logs a raw body: a body that is not JSON, or does not
parse, is logged as its size and media type only.
"""

from __future__ import annotations

import json
import logging
import re
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl

from server.redaction import MASK, OperationPhi, PhiMap, Redactor, Shape

payload_log = logging.getLogger("stealth.webhooks.payload")

# Prefixed ids and tokens in a raw path (a route the spec does not know): keep the prefix only.
_ID_SEGMENT = re.compile(r"(?<=/)([a-z]{2,12}_)[A-Za-z0-9_]{4,}")
MAX_LOGGED_BODY = 256 * 1024

# Libraries that write request or row data at verbose levels, held above them whatever the root level:
# SQLAlchemy's engine logs result rows at DEBUG and statements at INFO (rows hold PHI; parameters are hidden
# anyway, hide_parameters), connexion's parameter validator logs the raw request path (PHI ids) at DEBUG.
QUIET_LOGGERS = {"sqlalchemy.engine": logging.WARNING, "connexion.validators.parameter": logging.INFO}


def quiet_loggers() -> None:
    for name, level in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(level)


quiet_loggers()


@lru_cache(maxsize=8)
def _map_for(kind: str, spec_dir: str | None) -> PhiMap:
    from pathlib import Path

    if kind == "pharmacy":
        from server.pharmacy.spec import load_pharmacy_spec

        return PhiMap(load_pharmacy_spec(Path(spec_dir) if spec_dir else None))
    from server.config import DEFAULT_SPEC_DIR
    from server.spec import load_spec

    return PhiMap(load_spec(Path(spec_dir) if spec_dir else DEFAULT_SPEC_DIR))


def partner_map() -> PhiMap:
    return _map_for("partner", None)


def pharmacy_map() -> PhiMap:
    return _map_for("pharmacy", None)


def safe_path(path: str) -> str:
    """A raw request path with its ids and tokens cut to their prefix (``/partner/patients/ptn_...``)."""
    return _ID_SEGMENT.sub(r"\1...", path)


def path_values(template: str, path: str) -> dict[str, str]:
    """The path parameters of ``path`` according to the spec path ``template``."""
    names = re.findall(r"\{([^}/]+)\}", template)
    if not names:
        return {}
    regex = "^" + re.sub(r"\\\{[^/]+?\\\}", "([^/]+)", re.escape(template)) + "$"
    match = re.match(regex, path) or re.search(regex.lstrip("^"), path)
    return dict(zip(names, match.groups(), strict=False)) if match else {}


def _parse_json(raw: bytes) -> tuple[bool, Any]:
    try:
        return True, json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False, None


def _body(red: Redactor, raw: bytes, content_type: str, shape: Shape | None, truncated: bool) -> Any:
    if not raw:
        return None
    if truncated or "json" not in content_type:
        return f"[{len(raw)}{'+' if truncated else ''} bytes {content_type or 'no content-type'} not logged]"
    ok, value = _parse_json(raw)
    if not ok:
        return f"[{len(raw)} bytes of unparseable JSON not logged]"
    return red.value(value, shape)


def exchange_fields(
    phi_map: PhiMap,
    op_phi: OperationPhi | None,
    template: str | None,
    path: str,
    query_string: bytes,
    request: tuple[bytes, str, bool],
    response: tuple[int, bytes, str, bool],
) -> dict[str, Any]:
    """The redacted ``query``, ``request_body`` and ``response_body`` fields of one access-log line."""
    red = phi_map.redactor()
    phi_params = op_phi.phi_params if op_phi is not None else frozenset()
    if template:
        for name, value in path_values(template, path).items():
            if ("path", name) in phi_params:
                red.learn(value)
    query: dict[str, Any] = {}
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        declared = op_phi is not None and ("query", name) in op_phi.params
        if ("query", name) in phi_params or (not declared and name in red.names):
            red.learn(value)
            value = MASK
        if name in query:
            prev = query[name]
            query[name] = [*prev, value] if isinstance(prev, list) else [prev, value]
        else:
            query[name] = value
    raw_req, req_type, req_trunc = request
    req_body = _body(red, raw_req, req_type, op_phi.request if op_phi else None, req_trunc)
    status, raw_resp, resp_type, resp_trunc = response
    resp_body = _body(red, raw_resp, resp_type, op_phi.response(status) if op_phi else None, resp_trunc)
    out: dict[str, Any] = {}
    if query:
        out["query"] = query
    out["request_body"] = req_body
    # An error message may quote what the caller sent (a rejected email): mask those values in it.
    out["response_body"] = red.strings(resp_body) if status >= 400 else resp_body
    return out


def log_webhook_payload(api: str, event_type: str, event_id: str, body: bytes | str) -> None:
    """Log a webhook payload at DEBUG with every x-phi value redacted (nothing when DEBUG is off)."""
    if not payload_log.isEnabledFor(logging.DEBUG):
        return
    raw = body.encode("utf-8") if isinstance(body, str) else body
    phi_map = pharmacy_map() if api == "pharmacy" else partner_map()
    red = phi_map.redactor()
    payload = _body(
        red, raw, "application/json", phi_map.webhooks.get(event_type), len(raw) > MAX_LOGGED_BODY
    )
    record = {"api": api, "event_type": event_type, "event_id": event_id, "payload": red.strings(payload)}
    payload_log.debug(json.dumps(record, separators=(",", ":"), default=str))
