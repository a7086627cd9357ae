"""`make bench`: throughput, latency, webhook dispatch, growth and tooling timings (see bench/README.md)."""
