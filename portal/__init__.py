"""The developer portal: a static site built from the bundled OpenAPI documents and the guides.

``python -m portal.build --out build/portal`` writes it; everything generated from the spec (reference pages,
code samples, error and scenario tables, lifecycle diagrams) is generated at build time.
"""
