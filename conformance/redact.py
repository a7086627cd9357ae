"""Redaction of PHI and secrets in every artifact the suite writes.

Three layers: (1) JSON values under any property the spec marks ``x-phi`` (or named like a PHI field) become
``[REDACTED]``; (2) the same keys inside free text (JSON fragments, Python reprs, query strings) are masked; (3) every
literal PHI value seen during the run is masked wherever it appears (URLs, curl lines, error messages). API keys
keep their first 8 characters; webhook secrets are masked entirely.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable
from typing import Any

from stealth_spec.walk import nodes

from .spec import HEURISTIC_PHI_NAMES, Spec

MASK = "[REDACTED]"
SECRET_HEADERS = {"x-api-key", "authorization", "cookie", "set-cookie", "proxy-authorization"}
KEY_RE = re.compile(r"\b(sk_(?:live|test)_)[A-Za-z0-9]{4,}")
WHSEC_RE = re.compile(r"\bwhsec_[A-Za-z0-9+/=_-]{4,}")


class Redactor:
    def __init__(self, spec: Spec | None, secrets: Iterable[str] = ()) -> None:
        names = set(HEURISTIC_PHI_NAMES)
        if spec is not None:
            names |= spec.phi_names
        self.names = names
        self.secrets = {s for s in secrets if s and len(s) >= 6}
        self.values: set[str] = set()
        # Constants of the contract (enum values, error codes) are never PHI, even in a PHI-named field.
        self.constants: set[str] = set()
        if spec is not None:
            for node in nodes(spec.full):
                for v in node.get("enum") or []:
                    if isinstance(v, str):
                        self.constants.add(v)
                if isinstance(node.get("const"), str):
                    self.constants.add(node["const"])
        alt = "|".join(sorted((re.escape(n) for n in names), key=len, reverse=True))
        value = r'(?:"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|-?[\d.]+|true|false|null|True|False|None|\{[^{}]*\}|\[[^\[\]]*\])'
        self._kv = re.compile(rf'(["\'])({alt})\1(\s*:\s*)({value})')
        self._query = re.compile(rf"([?&](?:{alt})=)[^&#\s'\"]*")

    # ---- learning values ------------------------------------------------------------------------------------
    def learn(self, value: Any) -> None:
        """Remember the literal PHI values inside a JSON value, to mask them anywhere later."""
        if isinstance(value, dict):
            for k, v in value.items():
                if k in self.names:
                    self._learn_leaf(v)
                else:
                    self.learn(v)
        elif isinstance(value, list):
            for v in value:
                self.learn(v)

    def _learn_leaf(self, v: Any) -> None:
        if isinstance(v, str):
            if len(v) >= 4 and v not in self.constants:
                self.values.add(v)
        elif isinstance(v, dict | list):
            for x in v.values() if isinstance(v, dict) else v:
                self._learn_leaf(x)

    def learn_text(self, text: str | None) -> None:
        if not text:
            return
        with contextlib.suppress(ValueError):
            self.learn(json.loads(text))

    # ---- redacting --------------------------------------------------------------------------------------------
    def _constant(self, value: Any) -> bool:
        """Enum and const values of the contract (error codes, statuses) are never PHI."""
        return isinstance(value, str) and value in self.constants

    def json_value(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {
                k: (
                    MASK
                    if k in self.names and v is not None and not self._constant(v)
                    else self.json_value(v)
                )
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [self.json_value(v) for v in value]
        if isinstance(value, str):
            return self.text(value)
        return value

    def text(self, text: str | None) -> str | None:
        if text is None:
            return None
        stripped = text.strip()
        if stripped[:1] in "{[":
            try:
                return json.dumps(self.json_value(json.loads(stripped)), ensure_ascii=False)
            except ValueError:
                pass
        out = text
        for _ in range(6):
            new = self._kv.sub(self._mask_pair, out)
            if new == out:
                break
            out = new
        out = self._query.sub(lambda m: m.group(1) + MASK, out)
        for v in sorted(self.values, key=len, reverse=True):
            if v in out:
                out = out.replace(v, MASK)
                out = out.replace(json.dumps(v)[1:-1], MASK)
        for s in self.secrets:
            out = out.replace(s, s[:8] + "…" + MASK if s.startswith("sk_") else MASK)
        out = KEY_RE.sub(lambda m: m.group(1) + "…" + MASK, out)
        out = WHSEC_RE.sub("whsec_" + MASK, out)
        return out

    def _mask_pair(self, m: re.Match[str]) -> str:
        value = m.group(4)
        if value[:1] in "\"'" and self._constant(value[1:-1]):  # an error code in a PHI-named "code" key
            return m.group(0)
        return f'{m.group(1)}{m.group(2)}{m.group(1)}{m.group(3)}"{MASK}"'

    def headers(self, headers: dict[str, str]) -> dict[str, str]:
        out = {}
        for k, v in headers.items():
            if k.lower() in SECRET_HEADERS:
                out[k] = (v[:8] + "…" + MASK) if v.startswith("sk_") else MASK
            else:
                out[k] = self.text(v) or ""
        return out

    def exchange(self, ex_dict: dict[str, Any]) -> dict[str, Any]:
        req = dict(ex_dict.get("request") or {})
        req["headers"] = self.headers(req.get("headers") or {})
        req["body"] = self.text(req.get("body"))
        req["url"] = self.text(req.get("url"))
        resp = ex_dict.get("response")
        if resp:
            resp = dict(resp)
            resp["headers"] = self.headers(resp.get("headers") or {})
            resp["body"] = self.text(resp.get("body"))
        return {**ex_dict, "request": req, "response": resp}

    def har(self, har: dict[str, Any]) -> dict[str, Any]:
        for entry in (har.get("log") or {}).get("entries") or []:
            for part in ("request", "response"):
                msg = entry.get(part) or {}
                for h in msg.get("headers") or []:
                    red = self.headers({h.get("name", ""): h.get("value", "")})
                    h["value"] = next(iter(red.values()))
                if part == "request":
                    msg["url"] = self.text(msg.get("url"))
                    for q in msg.get("queryString") or []:
                        if q.get("name") in self.names:
                            q["value"] = MASK
                        else:
                            q["value"] = self.text(q.get("value"))
                    if isinstance(msg.get("postData"), dict):
                        msg["postData"]["text"] = self.text(msg["postData"].get("text"))
                else:
                    content = msg.get("content") or {}
                    if content.get("encoding") == "base64":
                        import base64

                        try:
                            content["text"] = self.text(
                                base64.b64decode(content.get("text") or "").decode("utf-8")
                            )
                            content.pop("encoding", None)
                        except ValueError:
                            content["text"] = MASK
                    else:
                        content["text"] = self.text(content.get("text"))
        return har
