"""Benchmark: `jbctl probe` on the running local stack (`bash tools/up.sh`), against the
issue's latency targets.

    .venv/bin/python benchmarks/probe_bench.py [-n 20] [--camera] [--label after]

Runs ``jbctl --json probe -n N --save ...`` (two synthetic participants through signaling,
the gateway and the real stt/mt/tts services of the dev cluster), then prints each stage's
p50/p95 beside its target with the machine's load, and saves
benchmarks/results/probe[-<label>].json (git-ignored). Exit 1 when jbctl probe failed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# stage -> (percentile, target ms): translated caption and first audio after the end of speech,
# first partial after its onset
TARGETS = {"translation_ms": [("p50", 700), ("p95", 1000)], "first_partial_ms": [("p50", 400)],
           "first_audio_ms": [("p50", 1200)], "final_ms": []}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20, help="utterances (default 20)")
    parser.add_argument("--camera", action="store_true", help="participants also send VP8 video")
    parser.add_argument("--label", default="", help="suffix of the result file")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per stage")
    args = parser.parse_args()
    out = HERE / "results" / (f"probe-{args.label}.json" if args.label else "probe.json")
    out.parent.mkdir(exist_ok=True)
    jbctl = str(Path(sys.executable).parent / "jbctl")
    cmd = [jbctl, "--json", "probe", "-n", str(args.n), "--timeout", str(args.timeout),
           "--save", str(out), *(["--camera"] if args.camera else [])]
    print("running:", " ".join(cmd), file=sys.stderr)
    budget = 60 + args.n * (args.timeout + 12)  # every utterance bounded by its stage timeout
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, timeout=budget, check=False)
    if not out.exists():
        print(f"jbctl probe wrote no result (exit {proc.returncode}); is the stack up? "
              "`bash tools/up.sh`", file=sys.stderr)
        return 1
    doc = json.loads(out.read_text())
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                         cwd=HERE, check=False).stdout.strip()
    verdicts = {}
    for stage, targets in TARGETS.items():
        s = doc["summary"][stage]
        for pct, limit in targets:
            value = s[pct]
            verdicts[f"{stage} {pct} <= {limit}"] = value is not None and value <= limit
        print(f"{stage:18} p50 {s['p50']} ms  p95 {s['p95']} ms  (n {s['n']}, missing "
              f"{s['missing']})  " + "  ".join(
                  f"target {pct} <= {limit}: {'met' if verdicts[f'{stage} {pct} <= {limit}'] else 'NOT met'}"
                  for pct, limit in targets))
    doc.update({"targets": verdicts, "git": rev, "probe_exit": proc.returncode})
    out.write_text(json.dumps(doc, indent=2))
    print(f"load average before {doc['loadavg_before']}, after {doc['loadavg_after']} on "
          f"{os.cpu_count()} CPUs; saved {out}")
    return 1 if proc.returncode not in (0, 1) else 0


if __name__ == "__main__":
    sys.exit(main())
