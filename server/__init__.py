"""Stealth Health reference sandbox: the Partner API served from its OpenAPI contract."""
