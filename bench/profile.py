"""`python -m bench.profile`: where a request's time goes, from py-spy samples of a loaded server.

Starts the sandbox (or the bare baseline) on SQLite with one worker, loads it with wrk, records
``py-spy record --gil`` (only samples holding the GIL: CPU, not waiting) and prints the share of
samples under the frames that matter (handler, ORM, auth, validation, middleware, event loop).
py-spy is pinned in the dev extras; it needs ptrace (root, or CAP_SYS_PTRACE).
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

from bench import dbsetup, http_bench, procs, wrk

WATCH = (
    "ReferralHandlers.get_referral",
    "ReferralHandlers.list_referrals",
    "Session._execute_internal",
    "AuthMiddleware._authenticate",
    "EdgeMiddleware.__call__",
    "JSONResponseValidator2020._validate",
    "ParameterValidator2020.validate_request",
    "get_arguments",
    "serializers",
    "Runner.run",
    "WorkerThread.run",
    "Condition.notify",
)


def summarize(raw: Path, top: int = 25) -> str:
    total = 0
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [re.sub(r":\d+\)", ")", f) for f in stack.split(";")]
        for frame in set(frames):
            inclusive[frame] += n
        own[frames[-1]] += n
    if not total:
        return "no samples"
    lines = [f"{total} samples holding the GIL", "", "inclusive share of watched frames:"]
    for frame, n in inclusive.most_common():
        if any(w in frame for w in WATCH):
            lines.append(f"  {100 * n / total:5.1f}%  {frame[:120]}")
    lines += ["", "own time, top frames:"]
    lines += [f"  {100 * n / total:5.1f}%  {f[:120]}" for f, n in own.most_common(top)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    p.add_argument("--app", default="server.app:app_from_env", help="uvicorn factory to profile")
    p.add_argument("--endpoint", choices=("get", "list", "post"), default="get")
    p.add_argument("--seconds", type=int, default=15)
    p.add_argument("--work-dir", type=Path, default=procs.REPO / "build" / "bench-profile")
    args = p.parse_args(argv)
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(pyspy).exists() or not wrk.ensure_installed():
        print("bench.profile needs py-spy (dev extras) and wrk", file=sys.stderr)
        return 2
    [target] = dbsetup.targets(args.work_dir, ["sqlite"])
    seeded = http_bench.seed(target)
    port = procs.free_port()
    raw = args.work_dir / f"{args.endpoint}.pyspy.txt"
    cmd = procs.uvicorn_cmd(args.app, port, 1)
    with procs.process(cmd, target.server_env(), port, args.work_dir / "server.log") as proc:
        http_bench.warm(port, seeded)
        load = threading.Thread(
            target=http_bench.measure,
            args=(port, seeded, args.endpoint),
            kwargs={"duration": args.seconds + 2, "connections": 16, "use_wrk": True},
        )
        load.start()
        subprocess.run(
            [pyspy, "record", "--gil", "-p", str(proc.pid), "-d", str(args.seconds), "-r", "200",
             "-f", "raw", "-o", str(raw), "--nonblocking"],
            check=True, capture_output=True,
        )  # fmt: skip
        load.join()
    print(summarize(raw))
    return 0


if __name__ == "__main__":
    sys.exit(main())
