"""Benchmark: `kill -9` of stt in the middle of a sentence on the running dev cluster (issue 9).

    .venv/bin/python benchmarks/stt_kill_bench.py [-n 3] [--label after]

Needs the local stack (`bash tools/up.sh`, or `jbctl cluster up --acl` + `jbctl deploy`; uses
jbctl's environment: JB_STATE_DIR, JB_DEV_PORT_OFFSET). Each run: a speaker talks sentence after
sentence, the stt process gets SIGKILL in the middle of one, Nomad restarts it; printed per run:
seconds from the kill to a new process, to its /ready, to Consul passing, to the next caption and
the next final, and the sentences after /ready that got no final. Then the medians, saved in
benchmarks/results/stt_kill[-<label>].json (git-ignored). Runs are 40 s apart or more: the stt
job's restart block allows a few restarts per interval. Exit 1 when a run failed the issue's
bar (next caption <= 10 s, no sentence after /ready lost).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "tests"), str(HERE.parent / "tests" / "integration")]

from stt_kill_scenario import kill_during_speech  # noqa: E402

KEYS = ("restarted_s", "ready_s", "consul_passing_s", "next_caption_s", "next_final_s")


def _passing(consul: str, service: str) -> list[str]:
    resp = httpx.get(f"{consul}/v1/health/service/{service}", params={"passing": "1"}, timeout=5)
    return [f"http://{i['Service']['Address']}:{i['Service']['Port']}" for i in resp.json()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=3, help="kills (default 3)")
    parser.add_argument("--label", default="", help="suffix of the result file")
    args = parser.parse_args()
    jbctl = str(Path(sys.executable).parent / "jbctl")
    status = subprocess.run([jbctl, "--json", "cluster", "status"], capture_output=True, text=True,
                            timeout=60, check=False)
    if status.returncode != 0:
        print("no dev cluster: start one with `bash tools/up.sh`", file=sys.stderr)
        return 1
    cluster = json.loads(status.stdout)
    consul, root = cluster["consul_http_addr"], Path(cluster["state_dir"])
    from jbcalling.gateway import ice

    ice.use_host_addresses(["127.0.0.1"])
    runs = []
    for i in range(args.n):
        deadline = time.monotonic() + 120
        while not _passing(consul, "stt") and time.monotonic() < deadline:
            time.sleep(1)
        load = os.getloadavg()[0]
        run = asyncio.run(asyncio.wait_for(kill_during_speech(
            _passing(consul, "signaling")[0], _passing(consul, "tts")[0],
            _passing(consul, "stt")[0], consul, root, say=lambda m: print(m, file=sys.stderr)),
            300))
        summary = {**run.summary(), "loadavg_1m_before": round(load, 2)}
        runs.append(summary)
        print(f"run {i + 1}: " + json.dumps(summary))
        if i < args.n - 1:
            time.sleep(40)
    medians = {k: statistics.median(v) if (v := [r[k] for r in runs if r[k] is not None]) else None
               for k in KEYS}
    print("median: " + json.dumps(medians))
    out = HERE / "results" / (f"stt_kill-{args.label}.json" if args.label else "stt_kill.json")
    out.parent.mkdir(exist_ok=True)
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                         cwd=HERE, check=False).stdout.strip()
    out.write_text(json.dumps({"git": rev, "cpus": os.cpu_count(), "runs": runs,
                               "median": medians}, indent=2))
    print(f"saved {out}", file=sys.stderr)
    bad = [r for r in runs if r["next_caption_s"] is None or r["next_caption_s"] > 10 or r["missed"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
