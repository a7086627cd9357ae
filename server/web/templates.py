"""Server-rendered HTML (Jinja2, autoescaped)."""

from __future__ import annotations

from jinja2 import DictLoader, Environment, select_autoescape

_BASE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">
<title>{% block title %}Stealth Health{% endblock %}</title>
<style>
 :root { --brand: {{ primary }}; --accent: {{ accent }}; }
 body { font-family: system-ui, sans-serif; margin: 0; background: #f6f7f9; color: #1d2330; }
 header { background: var(--brand); color: #fff; padding: 1rem 1.5rem; display: flex; gap: 1rem; align-items: baseline; }
 header .with { opacity: .8; font-size: .9rem; }
 main { max-width: 46rem; margin: 1.5rem auto; background: #fff; padding: 1.5rem 2rem; border-radius: 8px;
        box-shadow: 0 1px 3px rgba(0,0,0,.1); }
 fieldset { border: 1px solid #dde; border-radius: 6px; margin: 1rem 0; padding: .5rem 1rem 1rem; }
 legend { font-weight: 600; color: var(--brand); }
 label { display: block; margin-top: .75rem; font-size: .95rem; }
 input, select, textarea { width: 100%; box-sizing: border-box; padding: .45rem; margin-top: .25rem;
        border: 1px solid #bbc; border-radius: 4px; font: inherit; }
 textarea { min-height: 3.5rem; }
 button { margin-top: 1.25rem; background: var(--accent); color: #1d2330; border: 0; border-radius: 4px;
        padding: .7rem 1.4rem; font-weight: 600; font-size: 1rem; cursor: pointer; }
 .error { background: #fdecea; color: #8a1c12; border: 1px solid #f5c2bd; padding: .75rem 1rem; border-radius: 4px; }
 .ok { background: #e8f5e9; color: #1b5e20; border: 1px solid #c8e6c9; padding: .75rem 1rem; border-radius: 4px; }
 .hint { color: #667; font-size: .85rem; }
 .code { font-family: ui-monospace, monospace; font-size: .85rem; color: #667; }
 table { border-collapse: collapse; width: 100%; } td, th { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid #eee; }
</style></head>
<body><header><strong>{{ partner_name }}</strong><span class="with">with Stealth Health</span></header>
<main>{% block main %}{% endblock %}</main></body></html>
"""

_ENROLL = """{% extends "base.html" %}
{% block title %}{{ product_name }} enrollment — {{ partner_name }}{% endblock %}
{% block main %}
<h1>{{ product_name }}</h1>
<p>Complete this medical intake so a licensed Stealth Health physician can review your request.</p>
{% if errors %}<div class="error" role="alert"><strong>Please fix the following:</strong><ul>
{% for e in errors %}<li>{{ e }}</li>{% endfor %}</ul></div>{% endif %}
<form method="post" action="{{ action }}" autocomplete="off">
<input type="hidden" name="csrf_token" value="{{ csrf_token }}">
<fieldset><legend>About you</legend>
 <label>First name <input name="first_name" required maxlength="100" value="{{ values.first_name }}"></label>
 <label>Last name <input name="last_name" required maxlength="100" value="{{ values.last_name }}"></label>
 <label>Email <input type="email" name="email" required maxlength="254" value="{{ values.email }}"></label>
 <label>Phone <input name="phone" maxlength="32" value="{{ values.phone }}"></label>
 <label>Date of birth <input type="date" name="date_of_birth" required value="{{ values.date_of_birth }}"></label>
 <label>Sex assigned at birth <select name="sex" required>
   {% for s in ["", "male", "female", "other"] %}<option value="{{ s }}" {% if values.sex == s %}selected{% endif %}>{{ s or "Choose…" }}</option>{% endfor %}
 </select></label>
 <label>State <input name="state" required maxlength="2" pattern="[A-Za-z]{2}" placeholder="FL" value="{{ values.state }}"></label>
</fieldset>
{% for group in groups %}<fieldset><legend>{{ group.title }}</legend>
 {% for q in group.questions %}
 <label>{{ q.text }}
 {% if q.kind == "textarea" %}<textarea name="q_{{ q.id }}" maxlength="2000" {% if q.required %}required{% endif %}>{{ values["q_" ~ q.id] }}</textarea>
 {% elif q.kind == "select" %}<select name="q_{{ q.id }}" {% if q.required %}required{% endif %}><option value="">Choose…</option>
   {% for o in q.options %}<option {% if values["q_" ~ q.id] == o %}selected{% endif %}>{{ o }}</option>{% endfor %}</select>
 {% elif q.kind == "yesno" %}<select name="q_{{ q.id }}" {% if q.required %}required{% endif %}><option value="">Choose…</option>
   {% for o in ["Yes", "No"] %}<option {% if values["q_" ~ q.id] == o %}selected{% endif %}>{{ o }}</option>{% endfor %}</select>
 {% else %}<input name="q_{{ q.id }}" maxlength="500" value="{{ values["q_" ~ q.id] }}" {% if q.required %}required{% endif %}>{% endif %}
 </label>{% endfor %}
</fieldset>{% endfor %}
{% if payment_required %}<fieldset><legend>Payment: {{ price }}</legend>
 <p class="hint">Sandbox: test card 4242 4242 4242 4242 succeeds (any future expiry, any CVC); any other number is declined.</p>
 <label>Card number <input name="card_number" inputmode="numeric" required maxlength="23" placeholder="4242 4242 4242 4242"></label>
 <label>Expiry (MM/YY) <input name="card_expiry" required maxlength="5" placeholder="12/30"></label>
 <label>CVC <input name="card_cvc" required maxlength="4" inputmode="numeric" placeholder="123"></label>
</fieldset>{% endif %}
<button type="submit">Submit for physician review</button>
</form>
<p class="code">Referral {{ referral_id }} · link valid until {{ expires_at }}</p>
{% endblock %}"""

_MESSAGE = """{% extends "base.html" %}
{% block title %}{{ heading }} — {{ partner_name }}{% endblock %}
{% block main %}<h1>{{ heading }}</h1>
<div class="{{ kind }}" {% if kind == "error" %}role="alert"{% endif %}>{{ message }}</div>
{% if code %}<p class="code">{{ code }}</p>{% endif %}
{% if rows %}<table>{% for k, v in rows %}<tr><th>{{ k }}</th><td>{{ v }}</td></tr>{% endfor %}</table>{% endif %}
{% endblock %}"""

ENV = Environment(
    loader=DictLoader({"base.html": _BASE, "enroll.html": _ENROLL, "message.html": _MESSAGE}),
    autoescape=select_autoescape(default=True, default_for_string=True),
)


def render(name: str, **values: object) -> str:
    values.setdefault("primary", "#1f4e79")
    values.setdefault("accent", "#f2a900")
    values.setdefault("partner_name", "Stealth Health")
    return ENV.get_template(name).render(**values)
