"""Cold start of every Lambda function `chalice package` builds, in fresh interpreters.

The deployment zip of `make package` (build/prod) is unpacked once, as Lambda unpacks it into
/var/task; for each function of build/prod/sam.json a new interpreter (`python -S`: no venv,
only the package and the standard library) with the prod stage's environment imports the
handler's module and looks the handler up, as the runtime does before the first event; p50/p99
over N runs, and whether onnxruntime got imported (issue 4: functions that do not score must
not pay for it). The zip carries each module's bytecode (`infra/package.py`); /var/task is
read-only, so nothing is written at import (PYTHONDONTWRITEBYTECODE=1), as on Lambda.

The API handler, the one function that scores, is measured again with the credit model loaded
and verified after the import (SHA-256, card, self-check): what the first decision of a new
container pays, against issue 4's "import + model load <= 1 s"; then the scorer alone; and
last the API handler once more with the bytecode removed (every module compiled from source,
what the zip cost before it carried bytecode). Not in the figures: the Lambda runtime's own
start and the first AWS clients' TLS set-up. `python -m bench.cold_start` prints JSON
(BENCH_RUNS: N, 10).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from bench.common import ROOT, clean_env, emit, size, summary

TEMPLATE = ROOT / "build" / "prod" / "sam.json"
ZIP = ROOT / "build" / "prod" / "deployment.zip"
SCORING_FUNCTION = "APIHandler"
RUNS = 10  # fresh interpreters per figure; with n < 100 the p99 is the slowest run

PROBE = """
import json, sys, time
t0 = time.perf_counter()
sys.path.insert(0, {package!r})
import importlib
getattr(importlib.import_module({module!r}), {attribute!r})
t1 = time.perf_counter()
out = {{"import_ms": (t1 - t0) * 1000, "onnxruntime": "onnxruntime" in sys.modules}}
if {load_model!r}:
    from chalicelib.risk import scorer
    ok, detail = scorer.model_status()
    assert ok, detail
    out["load_ms"] = (time.perf_counter() - t1) * 1000
print(json.dumps(out))
"""


def functions(template: Path = TEMPLATE) -> dict[str, str]:
    """Logical id -> handler ("module.attribute") of every function in the packaged template."""
    resources = json.loads(template.read_text())["Resources"]
    return {name: res["Properties"]["Handler"] for name, res in resources.items()
            if res["Type"] == "AWS::Serverless::Function"}


@contextmanager
def unpacked(zip_path: Path = ZIP) -> Iterator[Path]:
    """The deployment zip unpacked into a temporary directory, as Lambda's /var/task."""
    with tempfile.TemporaryDirectory(prefix="bench-task-") as task:
        with zipfile.ZipFile(zip_path) as archive:
            archive.extractall(task)
        yield Path(task)


def probe(package: Path, handler: str, runs: int, load_model: bool = False) -> dict:
    from infra.stage import stage_env

    module, attribute = handler.rsplit(".", 1)
    env = {**clean_env(), **stage_env("prod"), "AWS_DEFAULT_REGION": "us-east-1",
           "PYTHONDONTWRITEBYTECODE": "1"}
    for var in ("RISK_MODEL_DIR", "PYTHONPATH"):
        env.pop(var, None)
    code = PROBE.format(package=str(package), module=module, attribute=attribute, load_model=load_model)
    samples = [json.loads(subprocess.run([sys.executable, "-S", "-c", code], env=env, cwd=package,
                                         check=True, capture_output=True, text=True).stdout)
               for _ in range(runs)]
    result = {"handler": handler, "runs": runs,
              "import": summary([s["import_ms"] for s in samples], digits=0),
              "onnxruntime": any(s["onnxruntime"] for s in samples)}
    if load_model:
        result["load"] = summary([s["load_ms"] for s in samples], digits=0)
        result["import_and_load"] = summary([s["import_ms"] + s["load_ms"] for s in samples], digits=0)
    return result


def measure(runs: int | None = None) -> dict:
    runs = runs or size("BENCH_RUNS", RUNS, 3)
    if not (TEMPLATE.exists() and ZIP.exists()):
        raise SystemExit("build/prod/sam.json or deployment.zip missing: run `make package` first")
    handlers = functions()
    with unpacked() as package:
        found = {name: probe(package, handler, runs, load_model=name == SCORING_FUNCTION)
                 for name, handler in handlers.items()}
        scoring_path = probe(package, "chalicelib.risk.scorer.score", runs, load_model=True)
        caches = list(package.rglob("__pycache__"))
        bytecode = sum(1 for cache in caches for _ in cache.glob("*.cpython-312.pyc"))
        for cache in caches:
            shutil.rmtree(cache)
        source_only = probe(package, handlers[SCORING_FUNCTION], runs, load_model=True)
    return {"runs": runs, "zip": str(ZIP.relative_to(ROOT)), "scoring_function": SCORING_FUNCTION,
            "bytecode_modules": bytecode, "functions": found, "scoring_path": scoring_path,
            "scoring_function_source_only": source_only}


def main() -> int:
    return emit(measure())


if __name__ == "__main__":
    sys.exit(main())
