"""Spec tooling: bundling, per-tier subsets, lint rules and the lifecycle/extension readers shared by the server, the conformance suite and the portal."""
