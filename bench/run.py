"""Benchmarks that print figures (never asserted in tests). `make bench` runs them.

- cold import of each function's entry module, in a fresh interpreter (what a Lambda cold
  start pays before the handler runs), p50/p99 over N runs;
- the deployment package's size, zipped and unzipped (from `make package`).
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = int(os.environ.get("BENCH_RUNS", "15"))
ENTRY_MODULES = {"api_handler": "app", "notification_consumer": "chalicelib.repay.routes"}

PROBE = """
import os, sys, time
sys.path.insert(0, {root!r})
from infra.stage import apply_stage_env
apply_stage_env("prod")
t = time.perf_counter()
import {module}
print((time.perf_counter() - t) * 1000)
print("onnxruntime" in sys.modules)
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def cold_imports() -> list[tuple[str, float, float, bool]]:
    rows = []
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["AWS_DEFAULT_REGION"] = "us-east-1"
    for function, module in ENTRY_MODULES.items():
        times, onnx = [], False
        for _ in range(RUNS):
            out = subprocess.run([sys.executable, "-c", PROBE.format(root=str(ROOT), module=module)],
                                 capture_output=True, text=True, env=env, check=True).stdout.split()
            times.append(float(out[0]))
            onnx = out[1] == "True"
        rows.append((function, statistics.median(times), percentile(times, 0.99), onnx))
    return rows


def package_size() -> tuple[float, float] | None:
    zip_path = ROOT / "build" / "prod" / "deployment.zip"
    if not zip_path.exists():
        return None
    with zipfile.ZipFile(zip_path) as archive:
        unzipped = sum(i.file_size for i in archive.infolist())
    return zip_path.stat().st_size / 2**20, unzipped / 2**20


EXTRA_BENCHES = ("bench.risk_bench", "bench.sweep_bench", "bench.jobs_bench")  # each prints its own table rows


def main() -> int:
    print(f"| function | cold import p50 (ms) | p99 (ms) | imports onnxruntime | runs |")
    print("|---|---|---|---|---|")
    for function, p50, p99, onnx in cold_imports():
        print(f"| {function} | {p50:.0f} | {p99:.0f} | {'yes' if onnx else 'no'} | {RUNS} |")
    size = package_size()
    print()
    if size:
        print(f"| package | zipped {size[0]:.1f} MiB | unzipped {size[1]:.1f} MiB | limit 250 MiB |")
    else:
        print("package: not built (run `make package`)")
    for module in EXTRA_BENCHES:
        print()
        subprocess.run([sys.executable, "-m", module], cwd=ROOT, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
