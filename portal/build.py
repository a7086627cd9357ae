"""Build the developer portal: ``python -m portal.build --out build/portal``.

Inputs: the bundles written by ``make bundle`` (``build/openapi/partner-api.json``, the per-tier
``partner-api.<tier>.json`` and ``pharmacy-api.json``), the guides in ``portal/guides/`` and the renderer and
diagram library vendored from ``node_modules`` (Scalar's standalone bundle, mermaid). A bundle that is missing
is made from ``spec/`` on the fly (with a warning), so the portal also builds before ``make bundle`` ran.

Output: a static site with relative links only (it works at ``/`` and under ``/docs/``) that makes no request
to any other host when viewed.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import shutil
import sys
import time
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from portal import diagrams, samples, tables
from portal.specdata import access_tiers, deref, iter_operations, iter_webhooks, lifecycles, path_parameters

REPO = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Audience:
    slug: str  # page name under reference/
    title: str
    bundle: str  # bundle file stem under build/openapi
    blurb: str
    sample_audience: str  # audience passed to the sample generator


AUDIENCES = [
    Audience(
        "referral",
        "Referral tier",
        "partner-api.referral",
        "No PHI. Create referrals, send customers to co-branded enrollment, follow de-identified status "
        "from enrollment to delivery through webhooks.",
        "referral",
    ),
    Audience(
        "clinical",
        "Clinical tier",
        "partner-api.clinical",
        "Full PHI under a BAA. Everything in the referral tier plus patients, intake, appointments, "
        "messages, transactions, your own prescribers and partner-submitted prescriptions.",
        "clinical",
    ),
    Audience(
        "prescriber",
        "Prescriber tier",
        "partner-api.prescriber",
        "Full PHI under a BAA. Submit structured intake from your own UI, get the physician's decision "
        "and the signed prescription, route it to a network pharmacy.",
        "prescriber",
    ),
    Audience(
        "pharmacy",
        "Pharmacy API",
        "pharmacy-api",
        "Pharmacy operations for clinics: register webhooks for shipment and medication events, request "
        "refills.",
        "pharmacy",
    ),
    Audience(
        "full",
        "Full partner API",
        "partner-api",
        "Every operation and webhook of every tier in one document, with the sandbox-only controls "
        "(test clock, advance, trigger).",
        "full",
    ),
]

# (slug, title, group); the Markdown source is portal/guides/<slug>.md.
GUIDES = [
    ("quickstart", "Quickstart", "Start here"),
    ("authentication", "Authentication and key rotation", "Start here"),
    ("tiers", "Tiers and PHI boundaries", "Start here"),
    ("webhooks", "Webhooks", "Build"),
    ("lifecycles", "Lifecycles", "Build"),
    ("sandbox", "The sandbox", "Build"),
    ("errors", "Errors", "Build"),
    ("rate-limits", "Rate limits", "Build"),
    ("pagination", "Pagination", "Build"),
    ("conformance", "Conformance suite", "Go live"),
    ("pharmacy", "Pharmacy API integration", "Pharmacy API"),
    ("changelog", "Changelog", "Reference"),
]

SCALAR_CONFIG: dict[str, Any] = {
    # Nothing may leave the page: no hosted fonts, no telemetry, no request proxy, no API client that sends
    # requests, no AI agent or MCP features, no developer toolbar.
    "withDefaultFonts": False,
    "telemetry": False,
    "hideClientButton": True,
    "hideTestRequestButton": True,
    "showDeveloperTools": "never",
    "agent": {"disabled": True},
    "mcp": {"disabled": True},
    "persistAuth": False,
    "documentDownloadType": "none",
    # Only our generated x-codeSamples (curl, Python httpx, Node.js fetch) are offered.
    "hiddenClients": True,
    "showOperationId": True,
    "defaultOpenAllTags": True,
    "expandAllResponses": False,
    "hideDarkModeToggle": False,
    "layout": "modern",
    "theme": "default",
    "orderRequiredPropertiesFirst": True,
}

SCALAR_CSS = """
:root { --scalar-custom-header-height: 48px;
  --scalar-font: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  --scalar-font-code: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace; }
"""


def warn(msg: str) -> None:
    print(f"portal: warning: {msg}", file=sys.stderr)


# --------------------------------------------------------------------------------------------- bundles


def load_bundles(bundle_dir: Path, spec_root: Path) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Load every bundle the portal renders; make the missing ones from ``spec_root``. Returns (docs, notes)."""
    docs: dict[str, dict[str, Any]] = {}
    notes: list[str] = []

    def from_file(stem: str) -> dict[str, Any] | None:
        path = bundle_dir / f"{stem}.json"
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))
        return None

    def from_spec(api: str) -> dict[str, Any] | None:
        spec_dir = spec_root / api
        if not (spec_dir / "openapi.yaml").is_file():
            return None
        from stealth_spec.bundle import bundle

        notes.append(f"{api}: bundled from {spec_dir} (no {bundle_dir}/{api}.json)")
        return bundle(spec_dir, allow_missing=True)

    for api in ("partner-api", "pharmacy-api"):
        doc = from_file(api) or from_spec(api)
        if doc is None:
            notes.append(f"{api}: no bundle and no spec/{api}/openapi.yaml; its pages are left out")
            continue
        docs[api] = doc
    if "partner-api" in docs:
        for tier in ("referral", "clinical", "prescriber"):
            stem = f"partner-api.{tier}"
            doc = from_file(stem)
            if doc is None:
                try:
                    from stealth_spec.tiers import tier_subset

                    doc = tier_subset(docs["partner-api"], tier)
                    notes.append(f"{stem}: made with stealth_spec.tiers (no {bundle_dir}/{stem}.json)")
                except Exception as exc:  # the spec is being written: fall back to an operations-only subset
                    doc = operations_only_subset(docs["partner-api"], tier)
                    fallback = (
                        f"showing the {tier} operations without schema filtering"
                        if doc is not None
                        else "showing the full bundle"
                    )
                    notes.append(
                        f"{stem}: per-tier subset failed ({exc.__class__.__name__}: "
                        f"{str(exc)[:200]}); {fallback}"
                    )
                    if doc is None:
                        doc = copy.deepcopy(docs["partner-api"])
            docs[stem] = doc
    for note in notes:
        warn(note)
    return docs, notes


def operations_only_subset(full: dict[str, Any], tier: str) -> dict[str, Any] | None:
    """Fallback when stealth_spec.tiers refuses the spec (work in progress): keep the tier's operations only."""
    try:
        from stealth_spec import tiers as t

        doc = copy.deepcopy(full)
        t._filter_operations(doc, tier)
        t._drop_links(doc)
        t.prune_components(doc)
        t._prune_tags(doc)
        return doc
    except Exception:
        return None


def render_copy(doc: dict[str, Any], audience: str) -> dict[str, Any]:
    """The document handed to the renderer: code samples injected, the local sandbox listed first."""
    out = samples.inject_samples(doc, audience)
    servers = out.get("servers") or []
    local = [
        s for s in servers if "127.0.0.1" in str(s.get("url", "")) or "localhost" in str(s.get("url", ""))
    ]
    if local:
        out["servers"] = local + [s for s in servers if s not in local]
    return out


# ---------------------------------------------------------------------------------------------- layout


def nav_html(root: str, active: str, docs: dict[str, dict[str, Any]]) -> str:
    refs = "".join(
        f'<a href="{root}reference/{a.slug}.html"{" class=active" if active == "ref-" + a.slug else ""}>{escape(a.title)}</a>'
        for a in AUDIENCES
        if a.bundle in docs
    )
    return (
        f'<header class="topbar"><a class="brand" href="{root}index.html">Stealth Health '
        f'<span>Developers</span></a><nav><a href="{root}guides/quickstart.html"'
        f"{' class=active' if active.startswith('guide-') else ''}>Guides</a>{refs}"
        f'<a href="{root}downloads.html"{" class=active" if active == "downloads" else ""}>Downloads</a>'
        "</nav></header>"
    )


def page(
    title: str,
    body: str,
    root: str,
    active: str,
    docs: dict[str, dict[str, Any]],
    head: str = "",
    scripts: str = "",
    body_class: str = "",
) -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} · Stealth Health Developers</title>"
        f'<link rel="icon" href="{root}assets/favicon.svg" type="image/svg+xml">'
        f'<link rel="stylesheet" href="{root}assets/portal.css">{head}</head>'
        f'<body class="{body_class}">{nav_html(root, active, docs)}{body}'
        f'<script src="{root}assets/portal.js"></script>{scripts}</body></html>\n'
    )


def guide_sidebar(root: str, active_slug: str) -> str:
    out, group = ['<aside class="sidebar"><nav>'], None
    for slug, title, g in GUIDES:
        if g != group:
            if group is not None:
                out.append("</ul>")
            out.append(f"<h4>{escape(g)}</h4><ul>")
            group = g
        cls = ' class="active"' if slug == active_slug else ""
        out.append(f'<li><a href="{root}guides/{slug}.html"{cls}>{escape(title)}</a></li>')
    out.append("</ul><h4>API reference</h4><ul>")
    for a in AUDIENCES:
        out.append(f'<li><a href="{root}reference/{a.slug}.html">{escape(a.title)}</a></li>')
    out.append(f'<li><a href="{root}downloads.html">Downloads</a></li></ul></nav></aside>')
    return "".join(out)


# ---------------------------------------------------------------------------------------------- guides


def _highlight(code: str, lang: str, _attrs: Any) -> str:
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import get_lexer_by_name
    from pygments.util import ClassNotFound

    try:
        lexer = get_lexer_by_name(lang or "text")
    except ClassNotFound:
        return ""
    return highlight(code, lexer, HtmlFormatter(nowrap=True))


def markdown_renderer():
    from markdown_it import MarkdownIt

    md = MarkdownIt(
        "commonmark", {"html": True, "linkify": False, "typographer": False, "highlight": _highlight}
    )
    md.enable("table")
    md.enable("strikethrough")
    return md


def mermaid_block(source: str, kind: str, name: str) -> str:
    return (
        f'<figure class="diagram" data-diagram="{escape(kind)}" data-name="{escape(name)}">'
        f'<pre class="mermaid">{escape(source)}</pre></figure>'
    )


def lifecycle_section(schema: str, lc: dict[str, Any], heading: bool = True) -> str:
    name = str(lc.get("name") or schema)
    human = name.replace("_", " ").capitalize()
    title = (
        (
            f'<h3 id="lifecycle-{escape(name)}">{escape(human)} '
            f"<code>{escape(schema)}.{escape(str(lc.get('property', 'status')))}</code></h3>"
        )
        if heading
        else ""
    )
    return (
        f'<section class="lifecycle" data-lifecycle="{escape(name)}" '
        f"data-states='{escape(json.dumps(diagrams.states_of(lc)))}'>{title}"
        + mermaid_block(diagrams.state_diagram(lc), "lifecycle", name)
        + tables.lifecycle_tables(lc)
        + "</section>"
    )


class Generated:
    """The blocks guides can include with ``{{ name [arg] }}`` on a line of its own."""

    def __init__(self, docs: dict[str, dict[str, Any]]):
        self.docs = docs
        self.partner = docs.get("partner-api") or {}
        self.pharmacy = docs.get("pharmacy-api") or {}
        self.used_mermaid = False

    def all_lifecycles(self) -> list[tuple[str, str, dict[str, Any]]]:
        out = [("partner-api", s, lc) for s, lc in lifecycles(self.partner)]
        out += [("pharmacy-api", s, lc) for s, lc in lifecycles(self.pharmacy)]
        return out

    def find_lifecycle(self, key: str) -> tuple[str, dict[str, Any]] | None:
        for _api, schema, lc in self.all_lifecycles():
            if key in (schema, lc.get("name")):
                return schema, lc
        return None

    def render(self, name: str, arg: str | None) -> str:
        if name == "errors_table":
            return tables.errors_table(self.partner)
        if name == "pharmacy_errors_table":
            return (
                tables.errors_table(self.pharmacy)
                if tables.error_catalog(self.pharmacy)
                else '<p class="note">The pharmacy API\'s error catalog is not in this build of the spec.</p>'
            )
        if name == "scenarios_table":
            return tables.scenarios_table(self.partner)
        if name == "pharmacy_scenarios_table":
            return tables.scenarios_table(self.pharmacy)
        if name == "events_table":
            return tables.events_table(self.partner)
        if name == "pharmacy_events_table":
            return tables.events_table(self.pharmacy)
        if name == "lifecycle":
            found = self.find_lifecycle(arg or "")
            if not found:
                return f'<p class="note">The lifecycle <code>{escape(arg or "")}</code> is not in this build of the spec.</p>'
            self.used_mermaid = True
            return lifecycle_section(found[0], found[1])
        if name == "all_lifecycles":
            parts = []
            for _api, schema, lc in self.all_lifecycles():
                parts.append(lifecycle_section(schema, lc))
            if parts:
                self.used_mermaid = True
            return "".join(parts) or '<p class="note">No lifecycle is defined in this build of the spec.</p>'
        if name == "referral_sequence":
            found = self.find_lifecycle("referral") or self.find_lifecycle("Referral")
            if not found:
                return '<p class="note">The referral lifecycle is not in this build of the spec.</p>'
            self.used_mermaid = True
            return mermaid_block(diagrams.referral_sequence(found[1]), "sequence", "referral")
        if name == "params":
            method, path = (arg or "").split(None, 1)
            return self.params_table(method, path.strip())
        if name == "sample":
            op_id, lang = (arg or "").split()
            return self.sample(op_id, lang)
        if name == "tier_operations":
            return self.tier_operations()
        if name == "sandbox_operations":
            return self.sandbox_operations()
        if name == "pharmacy_lifecycles":
            parts = [lifecycle_section(s, lc) for s, lc in lifecycles(self.pharmacy)]
            if parts:
                self.used_mermaid = True
            return (
                "".join(parts)
                or '<p class="note">The medication order lifecycle is not in this build of the spec.</p>'
            )
        if name in ("pharmacy_signature_header", "pharmacy_event_id_header"):
            want, fallback = (
                ("signature", "X-Pharmacy-Signature")
                if name == "pharmacy_signature_header"
                else ("event-id", "X-Pharmacy-Event-Id")
            )
            for _e, _m, op in iter_webhooks(self.pharmacy):
                for p in op.get("parameters") or []:
                    p = deref(self.pharmacy, p)
                    if p.get("in") == "header" and want in str(p.get("name", "")).lower():
                        return escape(p["name"])
            return fallback
        if name == "api_version":
            return escape(str((self.partner.get("info") or {}).get("version", "")))
        if name == "operations_count":
            return str(sum(1 for _ in iter_operations(self.partner)))
        raise KeyError(f"unknown generated block {{{{ {name} }}}}")

    def find_operation(self, op_id: str) -> tuple[dict[str, Any], str, str, dict[str, Any]] | None:
        for doc in (self.partner, self.pharmacy):
            for m, p, op in iter_operations(doc):
                if op.get("operationId") == op_id:
                    return doc, m, p, op
        return None

    def params_table(self, method: str, path: str) -> str:
        for doc in (self.partner, self.pharmacy):
            for m, p, op in iter_operations(doc):
                if m.upper() == method.upper() and p == path:
                    rows = []
                    for prm in path_parameters(doc, p, op):
                        if prm.get("in") not in ("query", "path"):
                            continue
                        schema = deref(doc, prm.get("schema") or {})
                        kind = schema.get("type", "")
                        if isinstance(schema.get("enum"), list):
                            kind = " | ".join(str(v) for v in schema["enum"])
                        rows.append(
                            f"<tr><td><code>{escape(prm['name'])}</code></td><td>{escape(prm['in'])}</td>"
                            f"<td>{escape(str(kind))}</td><td>{escape(str(prm.get('description', '')))}</td></tr>"
                        )
                    return (
                        '<table class="generated params-table"><thead><tr><th>Parameter</th><th>In</th>'
                        "<th>Type</th><th>Description</th></tr></thead><tbody>"
                        + "".join(rows)
                        + "</tbody></table>"
                    )
        return f'<p class="note"><code>{escape(method)} {escape(path)}</code> is not in this build of the spec.</p>'

    def sample(self, op_id: str, lang: str) -> str:
        found = self.find_operation(op_id)
        if not found:
            return f'<p class="note">The operation <code>{escape(op_id)}</code> is not in this build of the spec.</p>'
        doc, m, p, op = found
        audience = "pharmacy" if doc is self.pharmacy else "referral"
        req = samples.build_request(doc, m, p, op, audience)
        fn = {"curl": samples.curl_sample, "python": samples.python_sample, "node": samples.node_sample}[lang]
        hl = {"curl": "bash", "python": "python", "node": "javascript"}[lang]
        return f'<pre><code class="language-{hl}">{_highlight(fn(req), hl, None) or escape(fn(req))}</code></pre>'

    def tier_operations(self) -> str:
        rows = []
        for m, p, op in iter_operations(self.partner):
            tiers = access_tiers(op)
            if op.get("x-sandbox-only"):
                cells = '<td colspan="3">sandbox only (every tier, never in production)</td>'
            else:
                everyone = "referral" in tiers
                cells = "".join(
                    f"<td>{'yes' if everyone or t in tiers else ''}</td>"
                    for t in ("referral", "clinical", "prescriber")
                )
            rows.append(
                f"<tr><td><code>{m.upper()} {escape(p)}</code></td><td>{escape(str(op.get('summary', '')))}</td>{cells}</tr>"
            )
        return (
            '<table class="generated tier-ops"><thead><tr><th>Operation</th><th>Summary</th><th>Referral</th>'
            "<th>Clinical</th><th>Prescriber</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
        )

    def sandbox_operations(self) -> str:
        rows = [
            f"<tr><td><code>{m.upper()} {escape(p)}</code></td><td>{escape(str(op.get('summary', '')))}</td></tr>"
            for m, p, op in iter_operations(self.partner)
            if op.get("x-sandbox-only")
        ]
        if not rows:
            return '<p class="note">No sandbox-only operation is in this build of the spec.</p>'
        return (
            '<table class="generated sandbox-ops"><thead><tr><th>Operation</th><th>What it does</th></tr></thead>'
            "<tbody>" + "".join(rows) + "</tbody></table>"
        )


PLACEHOLDER = re.compile(r"<p>\{\{\s*([a-z_]+)(?:\s+([^}<]+?))?\s*\}\}</p>")
INLINE = re.compile(
    r"\{\{\s*(api_version|operations_count|pharmacy_signature_header|pharmacy_event_id_header)\s*\}\}"
)


def render_guide(slug: str, md_text: str, gen: Generated) -> tuple[str, str]:
    """(title, html) of one guide; generated blocks replaced."""
    title_match = re.match(r"#\s+(.+)\n", md_text)
    title = title_match.group(1).strip() if title_match else slug
    md_text = INLINE.sub(lambda m: gen.render(m.group(1), None), md_text)
    html = markdown_renderer().render(md_text)
    html = PLACEHOLDER.sub(
        lambda m: gen.render(m.group(1), (m.group(2) or "").replace("&quot;", '"') or None), html
    )

    # Headings get ids for deep links.
    def add_id(m: re.Match[str]) -> str:
        text = re.sub(r"<[^>]+>", "", m.group(2))
        anchor = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
        return f'<h{m.group(1)} id="{anchor}">{m.group(2)}</h{m.group(1)}>'

    html = re.sub(r"<h([23])>(.*?)</h\1>", add_id, html)
    return title, html


# ------------------------------------------------------------------------------------------------ pages


def reference_page(
    a: Audience, doc: dict[str, Any], docs: dict[str, dict[str, Any]], versions: dict[str, str]
) -> str:
    config = dict(SCALAR_CONFIG)
    config["url"] = f"./{a.slug}.openapi.json"
    config["favicon"] = "../assets/favicon.svg"
    config["customCss"] = SCALAR_CSS
    config["metaData"] = {"title": f"{a.title} API reference · Stealth Health Developers"}
    body = f'<div id="scalar-app" data-audience="{a.slug}"></div>'
    scripts = (
        '<script src="../assets/vendor/scalar/standalone.js"></script>'
        f"<script>Scalar.createApiReference('#scalar-app', {json.dumps(config)});</script>"
    )
    head = ""
    return page(
        f"{a.title} API reference",
        body,
        "../",
        "ref-" + a.slug,
        docs,
        head=head,
        scripts=scripts,
        body_class=f"reference-page renderer-scalar-{versions.get('scalar', '')}",
    )


def index_page(docs: dict[str, dict[str, Any]]) -> str:
    cards = []
    guides_for = {
        "referral": [
            ("quickstart", "Quickstart"),
            ("webhooks", "Webhooks"),
            ("sandbox", "Sandbox test values"),
        ],
        "clinical": [("tiers", "PHI boundaries"), ("webhooks", "Verify signatures"), ("errors", "Errors")],
        "prescriber": [
            ("lifecycles", "Appointment lifecycle"),
            ("sandbox", "Auto-review"),
            ("errors", "Errors"),
        ],
        "pharmacy": [("pharmacy", "Integration guide"), ("pharmacy", "Webhook handlers")],
        "full": [("sandbox", "Sandbox controls"), ("conformance", "Conformance suite")],
    }
    for a in AUDIENCES:
        present = a.bundle in docs
        links = "".join(f'<li><a href="guides/{s}.html">{escape(t)}</a></li>' for s, t in guides_for[a.slug])
        ref = (
            f'<a class="button" href="reference/{a.slug}.html">API reference</a>'
            if present
            else '<span class="button disabled">Reference not built</span>'
        )
        n_ops = sum(1 for _ in iter_operations(docs[a.bundle])) if present else 0
        n_hooks = sum(1 for _ in iter_webhooks(docs[a.bundle])) if present else 0
        cards.append(
            f'<div class="card tier-card" id="tier-{a.slug}"><h2>{escape(a.title)}</h2><p>{escape(a.blurb)}</p>'
            f'<p class="counts">{n_ops} operations · {n_hooks} webhooks</p>{ref}<ul>{links}</ul></div>'
        )
    body = (
        '<main class="home"><section class="hero"><h1>Build on Stealth Health</h1>'
        "<p>Refer patients, follow them through physician review and fulfillment, and receive signed webhooks. "
        "Pick your tier to see exactly what you can call and receive.</p>"
        '<p><a class="button primary" href="guides/quickstart.html">Quickstart: first webhook in minutes</a></p>'
        f'</section><section class="cards">{"".join(cards)}</section>'
        '<section class="quick"><h2>Quick links</h2><ul class="quick-links">'
        '<li><a href="guides/quickstart.html">Quickstart</a></li>'
        '<li><a href="guides/authentication.html">Authentication and key rotation</a></li>'
        '<li><a href="guides/tiers.html">Tiers and PHI boundaries</a></li>'
        '<li><a href="guides/webhooks.html">Webhooks: signatures, retries, guarantees</a></li>'
        '<li><a href="guides/lifecycles.html">Lifecycle diagrams</a></li>'
        '<li><a href="guides/sandbox.html">Sandbox test values and test clock</a></li>'
        '<li><a href="guides/errors.html">Every error code</a></li>'
        '<li><a href="guides/rate-limits.html">Rate limits</a></li>'
        '<li><a href="guides/pagination.html">Pagination</a></li>'
        '<li><a href="guides/conformance.html">Conformance suite</a></li>'
        '<li><a href="guides/pharmacy.html">Pharmacy API integration</a></li>'
        '<li><a href="guides/changelog.html">Changelog</a></li>'
        '<li><a href="downloads.html">Download the OpenAPI bundles</a></li>'
        "</ul></section></main>"
    )
    return page("Home", body, "", "home", docs)


def downloads_page(files: list[Path], docs: dict[str, dict[str, Any]]) -> str:
    rows = []
    for f in files:
        size = f.stat().st_size
        rows.append(
            f'<tr><td><a href="downloads/{f.name}" download>{escape(f.name)}</a></td>'
            f"<td>{size / 1024:.0f} KiB</td><td>{escape(describe_bundle(f.name))}</td></tr>"
        )
    body = (
        '<main class="content wide"><h1>Downloads</h1><p>The OpenAPI 3.1 bundles the reference pages are '
        "rendered from: self-contained, one file per API and per tier, in YAML and JSON. Generate clients, "
        "mocks or tests from them. The reference pages add generated code samples (<code>x-codeSamples</code>) "
        "to their copy; these downloads are the contract exactly as published.</p>"
        '<table class="generated downloads"><thead><tr><th>File</th><th>Size</th><th>What it is</th></tr>'
        f"</thead><tbody>{''.join(rows)}</tbody></table></main>"
    )
    return page("Downloads", body, "", "downloads", docs)


def describe_bundle(name: str) -> str:
    stem = name.rsplit(".", 1)[0]
    for a in AUDIENCES:
        if stem == a.bundle:
            return f"{a.title}: {a.blurb}"
    return "OpenAPI bundle"


# ------------------------------------------------------------------------------------------------ build


def vendor_assets(out: Path, node_modules: Path) -> dict[str, str]:
    versions = {}
    vendor = out / "assets" / "vendor"
    scalar_dir = node_modules / "@scalar" / "api-reference"
    mermaid_dir = node_modules / "mermaid"
    for name, src_dir, rel, dest in (
        ("scalar", scalar_dir, "dist/browser/standalone.js", vendor / "scalar" / "standalone.js"),
        ("mermaid", mermaid_dir, "dist/mermaid.min.js", vendor / "mermaid" / "mermaid.min.js"),
    ):
        src = src_dir / rel
        if not src.is_file():
            raise SystemExit(f"portal: {src} is missing; run `npm ci` first")
        dest.parent.mkdir(parents=True, exist_ok=True)
        text = src.read_text(encoding="utf-8")
        # No source maps are shipped; drop the comment so no tool goes looking for them.
        text = re.sub(r"\n//# sourceMappingURL=\S+\s*$", "\n", text)
        dest.write_text(text, encoding="utf-8")
        for lic in ("LICENSE", "LICENSE.md", "LICENSE.txt"):
            if (src_dir / lic).is_file():
                shutil.copyfile(src_dir / lic, dest.parent / "LICENSE")
                break
        versions[name] = json.loads((src_dir / "package.json").read_text())["version"]
    (vendor / "VERSIONS.json").write_text(json.dumps(versions, indent=2) + "\n")
    return versions


def build(out: Path, bundle_dir: Path, spec_root: Path, node_modules: Path) -> dict[str, Any]:
    started = time.monotonic()
    docs, notes = load_bundles(bundle_dir, spec_root)
    if "partner-api" not in docs:
        raise SystemExit("portal: no partner-api bundle and no spec to bundle; nothing to build")
    if out.exists():
        shutil.rmtree(out)
    (out / "assets").mkdir(parents=True)
    (out / "guides").mkdir()
    (out / "reference").mkdir()
    (out / "downloads").mkdir()
    versions = vendor_assets(out, node_modules)
    for asset in (HERE / "assets").iterdir():
        if asset.is_file():
            shutil.copyfile(asset, out / "assets" / asset.name)
    from pygments.formatters import HtmlFormatter

    (out / "assets" / "highlight.css").write_text(
        HtmlFormatter(style="friendly").get_style_defs(".highlight, pre code")
    )

    # Downloads: the bundles exactly as `make bundle` wrote them (or as made here).
    import yaml

    download_files: list[Path] = []
    for stem in (
        "partner-api",
        "partner-api.referral",
        "partner-api.clinical",
        "partner-api.prescriber",
        "pharmacy-api",
    ):
        if stem not in docs:
            continue
        for ext in ("yaml", "json"):
            src = bundle_dir / f"{stem}.{ext}"
            dest = out / "downloads" / f"{stem}.{ext}"
            if src.is_file():
                shutil.copyfile(src, dest)
            elif ext == "json":
                dest.write_text(json.dumps(docs[stem], indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            else:
                dest.write_text(
                    yaml.safe_dump(docs[stem], sort_keys=False, allow_unicode=True, width=120),
                    encoding="utf-8",
                )
            download_files.append(dest)

    pages: list[dict[str, Any]] = [
        {"path": "index.html", "kind": "home"},
        {"path": "downloads.html", "kind": "downloads"},
    ]
    (out / "index.html").write_text(index_page(docs), encoding="utf-8")
    (out / "downloads.html").write_text(downloads_page(download_files, docs), encoding="utf-8")

    # API reference per audience.
    for a in AUDIENCES:
        if a.bundle not in docs:
            continue
        doc = docs[a.bundle]
        rendered = render_copy(doc, a.sample_audience)
        (out / "reference" / f"{a.slug}.openapi.json").write_text(
            json.dumps(rendered, ensure_ascii=False), encoding="utf-8"
        )
        (out / "reference" / f"{a.slug}.html").write_text(
            reference_page(a, doc, docs, versions), encoding="utf-8"
        )
        pages.append(
            {
                "path": f"reference/{a.slug}.html",
                "kind": "reference",
                "audience": a.slug,
                "bundle": a.bundle,
                "operations": [
                    {
                        "operationId": op.get("operationId", ""),
                        "summary": op.get("summary", ""),
                        "method": m.upper(),
                        "path": p,
                    }
                    for m, p, op in iter_operations(doc)
                ],
                "webhooks": [
                    {"event": e, "operationId": op.get("operationId", ""), "summary": op.get("summary", "")}
                    for e, _m, op in iter_webhooks(doc)
                ],
            }
        )

    # Guides.
    for slug, _title, _group in GUIDES:
        gen = Generated(docs)
        md_text = (HERE / "guides" / f"{slug}.md").read_text(encoding="utf-8")
        title, html = render_guide(slug, md_text, gen)
        scripts = ""
        if gen.used_mermaid:
            scripts = (
                '<script src="../assets/vendor/mermaid/mermaid.min.js"></script>'
                '<script src="../assets/diagrams.js"></script>'
            )
        body = (
            f'<div class="layout">{guide_sidebar("../", slug)}<main class="content guide" '
            f'data-guide="{slug}">{html}</main></div>'
        )
        (out / "guides" / f"{slug}.html").write_text(
            page(
                title,
                body,
                "../",
                "guide-" + slug,
                docs,
                head='<link rel="stylesheet" href="../assets/highlight.css">',
                scripts=scripts,
            ),
            encoding="utf-8",
        )
        entry: dict[str, Any] = {"path": f"guides/{slug}.html", "kind": "guide", "slug": slug}
        if gen.used_mermaid:
            entry["diagrams"] = [
                {"name": m.group(1), "states": json.loads(m.group(2).replace("&quot;", '"'))}
                for m in re.finditer(r'data-lifecycle="([^"]+)" data-states=\'([^\']+)\'', html)
            ]
            entry["sequence"] = 'data-diagram="sequence"' in html
        pages.append(entry)

    elapsed = time.monotonic() - started
    manifest = {"pages": pages, "notes": notes, "versions": versions, "build_seconds": round(elapsed, 2)}
    (out / "portal-manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "build" / "portal")
    parser.add_argument(
        "--bundles",
        type=Path,
        default=REPO / "build" / "openapi",
        help="directory with the bundles of `make bundle` (default build/openapi)",
    )
    parser.add_argument(
        "--spec", type=Path, default=REPO / "spec", help="spec root, used for missing bundles"
    )
    parser.add_argument("--node-modules", type=Path, default=REPO / "node_modules")
    args = parser.parse_args(argv)
    manifest = build(args.out, args.bundles, args.spec, args.node_modules)
    print(
        f"portal: {len(manifest['pages'])} pages in {args.out} ({manifest['build_seconds']} s; "
        f"Scalar {manifest['versions'].get('scalar')}, mermaid {manifest['versions'].get('mermaid')})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
