"""Queries, one module per aggregate; handlers and services call these, never SQL directly."""
