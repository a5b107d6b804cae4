"""Benchmark jbctl against a running cluster: `status` wall time and a no-op `deploy`.

Targets (issue 2): `jbctl status` p50 < 0.5 s with the stack deployed; `jbctl deploy` of an
unchanged stack < 3 s (a no-op plan must not redeploy). Needs a cluster with the stack deployed
(`bash tools/up.sh`); uses the same environment as jbctl (NOMAD_ADDR, JB_DEV_PORT_OFFSET, ...).

    .venv/bin/python benchmarks/jbctl_bench.py [--runs 15]

Prints a table and saves benchmarks/results/jbctl.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
JBCTL = str(Path(sys.executable).parent / "jbctl")


def timed(args: list[str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one jbctl run.

    The CPU time is what jbctl itself costs, whatever else the shared machine is doing; the
    wall time is what the operator waits.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    res = subprocess.run([JBCTL, *args], capture_output=True, text=True, check=False, timeout=120)
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode != 0:
        sys.exit(f"jbctl {' '.join(args)} exited {res.returncode}:\n{res.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def summary(samples: list[tuple[float, float]]) -> dict[str, float]:
    ordered = sorted(wall for wall, _ in samples)
    return {"n": len(samples), "p50_s": round(statistics.median(ordered), 3),
            "p90_s": round(ordered[int(0.9 * (len(ordered) - 1))], 3),
            "min_s": round(ordered[0], 3), "max_s": round(ordered[-1], 3),
            "cpu_p50_s": round(statistics.median(cpu for _, cpu in samples), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    runs = max(3, min(args.runs, 100))
    deployed = json.loads(subprocess.run([JBCTL, "--json", "status"], capture_output=True,
                                         text=True, check=False).stdout or "{}")
    services = [s["service"] for s in deployed.get("services", []) if s.get("deployed")]
    if not services:
        sys.exit("no service deployed: run `bash tools/up.sh` first")
    timed(["status"])  # warm the page cache
    startup = summary([timed(["--help"]) for _ in range(runs)])
    status = summary([timed(["status"]) for _ in range(runs)])
    deploy = summary([timed(["deploy"]) for _ in range(max(3, runs // 3))])
    result = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_avg_1m": os.getloadavg()[0]},
        "services_deployed": services,
        "jbctl_help": startup,
        "jbctl_status": {**status, "target_p50_s": 0.5, "met": status["p50_s"] < 0.5},
        "jbctl_deploy_noop": {**deploy, "target_p50_s": 3.0, "met": deploy["p50_s"] < 3.0},
    }
    out = HERE / "results" / "jbctl.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    for name in ("jbctl_help", "jbctl_status", "jbctl_deploy_noop"):
        r = result[name]
        print(f"{name:18} p50 {r['p50_s']:.3f} s  p90 {r['p90_s']:.3f} s  "
              f"cpu p50 {r['cpu_p50_s']:.3f} s  (n={r['n']})")
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.1f}")
    print(f"saved {out}")


if __name__ == "__main__":
    main()
