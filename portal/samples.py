"""Code samples (curl, Python with httpx, Node.js with fetch) for every operation, generated from the spec.

Placeholders follow the sandbox: base URL ``http://127.0.0.1:8080`` (``make serve``), credentials from
``$STEALTH_PARTNER_ID`` / ``$STEALTH_API_KEY``, ``X-Access-Tier: clinical`` on clinical operations, path
parameters from environment variables named after them (``$REFERRAL_ID``), and the operation's own request
example as the body.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from portal.specdata import (
    access_tiers,
    iter_operations,
    parameter_example,
    path_parameters,
    request_example,
    security_headers,
)

BASE_URL = "http://127.0.0.1:8080"
LANGS = ("curl", "python", "node")

# Header -> environment variable holding its value (anything else: derived from the header name).
HEADER_ENV = {"x-partner-id": "STEALTH_PARTNER_ID", "x-api-key": "STEALTH_API_KEY"}


def _env_name(header_or_param: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", header_or_param).upper().strip("_")


def _camel(name: str) -> str:
    parts = re.split(r"[^A-Za-z0-9]", name)
    return parts[0].lower() + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def needs_access_tier(op: dict[str, Any], audience: str | None) -> bool:
    """Whether the sample sends ``X-Access-Tier: clinical`` for this audience."""
    tiers = access_tiers(op)
    if "referral" in tiers or "clinical" not in tiers:
        return False
    return audience in (None, "clinical", "full")


def operation_headers(doc: dict[str, Any], op: dict[str, Any], audience: str | None) -> list[tuple[str, str]]:
    """(header, environment variable holding its value) for the operation's credential headers."""
    env = dict(HEADER_ENV)
    if audience == "pharmacy":
        env["x-api-key"] = "PHARMACY_API_KEY"
    out: list[tuple[str, str]] = []
    for name in security_headers(doc, op):
        if name.lower() == "x-access-tier":
            continue
        out.append((name, env.get(name.lower(), _env_name(name))))
    return out


def server_base_path(doc: dict[str, Any]) -> str:
    """The path prefix of the document's servers (``/api/external`` for the pharmacy API, else empty)."""
    from urllib.parse import urlparse

    servers = [s.get("url", "") for s in doc.get("servers") or [] if isinstance(s, dict)]
    local = [u for u in servers if "127.0.0.1" in u or "localhost" in u]
    for url in local + servers:
        return urlparse(url).path.rstrip("/")
    return ""


def build_request(
    doc: dict[str, Any], method: str, path: str, op: dict[str, Any], audience: str | None
) -> dict[str, Any]:
    params = path_parameters(doc, path, op)
    path_params = [p for p in params if p.get("in") == "path"]
    query = []
    for p in params:
        if p.get("in") == "query" and p.get("required"):
            value = parameter_example(doc, p)
            query.append((p["name"], "" if value is None else value))
    has_body, body = request_example(doc, op)
    return {
        "method": method.upper(),
        "path": server_base_path(doc) + path,
        "path_params": [(p["name"], parameter_example(doc, p)) for p in path_params],
        "query": query,
        "headers": operation_headers(doc, op, audience),
        "access_tier": needs_access_tier(op, audience),
        "has_body": has_body,
        "body": body,
    }


def py_literal(value: Any, indent: int = 0) -> str:
    """A Python literal for a JSON value, laid out the way black would (double quotes, trailing commas)."""
    pad, inner = " " * indent, " " * (indent + 4)
    if isinstance(value, dict):
        if not value:
            return "{}"
        flat = "{" + ", ".join(f"{json.dumps(k)}: {py_literal(v)}" for k, v in value.items()) + "}"
        if len(flat) + indent <= 80 and not any(isinstance(v, (dict, list)) and v for v in value.values()):
            return flat
        items = "".join(
            f"{inner}{json.dumps(k, ensure_ascii=False)}: {py_literal(v, indent + 4)},\n"
            for k, v in value.items()
        )
        return "{\n" + items + pad + "}"
    if isinstance(value, list):
        if not value:
            return "[]"
        flat = "[" + ", ".join(py_literal(v) for v in value) + "]"
        if len(flat) + indent <= 80 and not any(isinstance(v, (dict, list)) and v for v in value):
            return flat
        return "[\n" + "".join(f"{inner}{py_literal(v, indent + 4)},\n" for v in value) + pad + "]"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if value is None:
        return "None"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return repr(value)


def _query_string(query: list[tuple[str, Any]]) -> str:
    from urllib.parse import urlencode

    return urlencode([(k, json.dumps(v) if isinstance(v, (dict, list, bool)) else v) for k, v in query])


def curl_sample(req: dict[str, Any]) -> str:
    path = req["path"]
    for name, _ in req["path_params"]:
        path = path.replace("{" + name + "}", "$" + _env_name(name))
    url = BASE_URL + path
    if req["query"]:
        url += "?" + _query_string(req["query"])
    lines = []
    for name, example in req["path_params"]:
        lines.append(f"# {_env_name(name)}: the {name} to use" + (f", e.g. {example}" if example else ""))
    method = req["method"]
    first = f'curl -sS -X {method} "{url}"' if method != "GET" else f'curl -sS "{url}"'
    parts = [first]
    for name, env in req["headers"]:
        parts.append(f'-H "{name}: ${env}"')
    if req["access_tier"]:
        parts.append('-H "X-Access-Tier: clinical"')
    if req["has_body"]:
        parts.append('-H "Content-Type: application/json"')
        body = json.dumps(req["body"], indent=2, ensure_ascii=False).replace("'", "'\\''")
        parts.append(f"-d '{body}'")
    lines.append(" \\\n  ".join(parts))
    return "\n".join(lines) + "\n"


def python_sample(req: dict[str, Any]) -> str:
    lines = [
        "import os",
        "",
        "import httpx",
        "",
        f'BASE_URL = os.environ.get("STEALTH_BASE_URL", "{BASE_URL}")',
        "headers = {",
    ]
    for name, env in req["headers"]:
        lines.append(f'    "{name}": os.environ["{env}"],')
    if req["access_tier"]:
        lines.append('    "X-Access-Tier": "clinical",')
    lines.append("}")
    path = req["path"]
    for name, example in req["path_params"]:
        var = re.sub(r"[^A-Za-z0-9_]", "_", name)
        comment = f"  # e.g. {example}" if example else ""
        lines.append(f'{var} = os.environ["{_env_name(name)}"]{comment}')
        path = path.replace("{" + name + "}", "{" + var + "}")
    url = f'f"{{BASE_URL}}{path}"'
    args = [url, "headers=headers"]
    if req["query"]:
        lines.append("params = " + py_literal(dict(req["query"])))
        args.append("params=params")
    if req["has_body"]:
        lines.append("body = " + py_literal(req["body"]))
        args.append("json=body")
    lines.append("")
    fn = req["method"].lower()
    if fn in ("get", "post", "put", "patch", "delete"):
        lines.append(f"response = httpx.{fn}({', '.join(args)}, timeout=30)")
    else:
        lines.append(f'response = httpx.request("{req["method"]}", {", ".join(args)}, timeout=30)')
    lines.append('print(response.status_code, response.headers.get("X-Request-Id"))')
    lines.append("print(response.text)")
    return "\n".join(lines) + "\n"


def node_sample(req: dict[str, Any]) -> str:
    lines = [
        "// Node.js 18+ (built-in fetch); save as a .mjs file for top-level await.",
        f'const BASE_URL = process.env.STEALTH_BASE_URL ?? "{BASE_URL}";',
    ]
    path = req["path"]
    for name, example in req["path_params"]:
        var = _camel(name)
        comment = f" // e.g. {example}" if example else ""
        lines.append(f"const {var} = process.env.{_env_name(name)};{comment}")
        path = path.replace("{" + name + "}", "${" + var + "}")
    url = "`${BASE_URL}" + path
    if req["query"]:
        url += "?${new URLSearchParams(" + json.dumps({k: str(v) for k, v in req["query"]}) + ")}"
    url += "`"
    lines.append("")
    lines.append(f"const response = await fetch({url}, {{")
    lines.append(f'  method: "{req["method"]}",')
    lines.append("  headers: {")
    for name, env in req["headers"]:
        lines.append(f'    "{name}": process.env.{env},')
    if req["access_tier"]:
        lines.append('    "X-Access-Tier": "clinical",')
    if req["has_body"]:
        lines.append('    "Content-Type": "application/json",')
    lines.append("  },")
    if req["has_body"]:
        body = json.dumps(req["body"], indent=2, ensure_ascii=False).replace("\n", "\n  ")
        lines.append(f"  body: JSON.stringify({body}),")
    lines.append("});")
    lines.append('console.log(response.status, response.headers.get("x-request-id"));')
    lines.append("console.log(await response.text());")
    return "\n".join(lines) + "\n"


def samples_for(
    doc: dict[str, Any], method: str, path: str, op: dict[str, Any], audience: str | None = None
) -> list[dict[str, str]]:
    """``x-codeSamples`` entries for one operation."""
    req = build_request(doc, method, path, op, audience)
    return [
        {"lang": "Shell", "label": "curl", "source": curl_sample(req)},
        {"lang": "Python", "label": "Python (httpx)", "source": python_sample(req)},
        {"lang": "JavaScript", "label": "Node.js (fetch)", "source": node_sample(req)},
    ]


def inject_samples(doc: dict[str, Any], audience: str | None = None) -> dict[str, Any]:
    """A copy of ``doc`` with ``x-codeSamples`` on every operation (the source spec is never touched)."""
    out = copy.deepcopy(doc)
    for method, path, op in list(iter_operations(out)):
        op["x-codeSamples"] = samples_for(out, method, path, op, audience)
    return out
