"""Pydantic v2 models generated from the OpenAPI bundles by ``make generate``. Do not edit: change the spec.

* ``stealth_models.partner``: the Stealth Health Partner API (``spec/partner-api``).
* ``stealth_models.pharmacy``: the pharmacy-operations API (``spec/pharmacy-api``).
"""
