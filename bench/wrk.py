"""Closed-loop throughput with wrk (Debian's package), which the harness installs itself when missing."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def available() -> str | None:
    return shutil.which("wrk")


def ensure_installed() -> str | None:
    """wrk, installed from Debian with apt-get when absent and we are root; None when impossible."""
    found = available()
    if found or os.environ.get("BENCH_NO_INSTALL") == "1":
        return found
    if shutil.which("apt-get") and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, env=env, capture_output=True)
    return available()


def version() -> str | None:
    exe = available()
    if not exe:
        return None
    out = subprocess.run([exe, "-v"], capture_output=True, text=True, check=False)
    first = (out.stdout or out.stderr).strip().splitlines()
    return first[0] if first else None


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not match:
        raise ValueError(f"unreadable wrk duration {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse(output: str) -> dict[str, float | int]:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if not (rps and total and p50 and p99):
        raise ValueError("wrk output not understood:\n" + output)
    return {
        "requests": int(total.group(1)),
        "rps": float(rps.group(1)),
        "p50_ms": round(_ms(p50.group(1)), 2),
        "p99_ms": round(_ms(p99.group(1)), 2),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "errors": sum(int(g) for g in errors.groups()) if errors else 0,
    }


_POST_LUA = """
wrk.method = "POST"
local counter = 0
local prefix = %(prefix)s
local template = %(template)s
request = function()
  counter = counter + 1
  return wrk.format(nil, nil, nil, string.format(template, prefix .. counter))
end
"""


def run(
    url: str,
    *,
    headers: dict[str, str],
    threads: int,
    connections: int,
    duration: float,
    post_template: str | None = None,
    unique_prefix: str = "",
) -> dict[str, float | int]:
    """``post_template`` is a JSON body with one ``%s`` made unique per request (a fresh partner_reference)."""
    exe = available()
    assert exe, "wrk is not installed"
    cmd = [exe, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency"]
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    with tempfile.TemporaryDirectory() as tmp:
        if post_template is not None:
            script = Path(tmp) / "post.lua"
            script.write_text(
                _POST_LUA % {"prefix": json.dumps(unique_prefix), "template": json.dumps(post_template)}
            )
            cmd += ["-s", str(script)]
        cmd.append(url)
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=duration + 60)
    return parse(out.stdout)
