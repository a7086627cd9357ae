"""Conformance suite of the Stealth Health Partner API: checks any deployment against the spec and the seeds."""
