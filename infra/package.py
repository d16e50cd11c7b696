"""`make package`: chalice package with the merge template, then check what chalice won't.

    python -m infra.package --stage prod

Fails when chalice could not install a dependency (it still exits 0), when cfn-lint finds an
error, or when the template lacks the tables, queues, DLQs or partial batch responses; prints
the deployment zip's size, zipped and unzipped, against Lambda's 250 MB unzipped limit.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

from infra.stage import ROOT

BUILD = ROOT / "build"
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
BIN = Path(sys.executable).parent
PROTECTED_PREFIXES = ("/v1/me", "/v1/loans", "/v1/applications", "/v1/ops")


def check_template(template: dict[str, Any], stage: str) -> list[str]:
    """Problems with the packaged template; empty when it has everything the app needs."""
    from infra.stage import apply_stage_env
    apply_stage_env(stage)
    import app  # noqa: F401 - registers every table and event source
    from chalicelib.core import config
    from chalicelib.core.db import TABLES
    from chalicelib.core.resources import QUEUES

    problems = []
    resources = template["Resources"]
    by_type: dict[str, list[dict[str, Any]]] = {}
    for res in resources.values():
        by_type.setdefault(res["Type"], []).append(res)
    tables = {r["Properties"]["TableName"]: r["Properties"] for r in by_type.get("AWS::DynamoDB::Table", [])}
    for model in TABLES:
        props = tables.get(model.Meta.table_name)
        if props is None:
            problems.append(f"table {model.Meta.table_name} missing")
            continue
        if not props.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled"):
            problems.append(f"table {model.Meta.table_name}: point-in-time recovery off")
        if props.get("SSESpecification", {}).get("SSEType") != "KMS":
            problems.append(f"table {model.Meta.table_name}: not KMS-encrypted")
    queues = {r["Properties"]["QueueName"]: r["Properties"] for r in by_type.get("AWS::SQS::Queue", [])}
    for spec in QUEUES:
        name = config.queue_name(spec.key)
        props = queues.get(name)
        if props is None or (name + "-dlq") not in queues:
            problems.append(f"queue {name} or its DLQ missing")
            continue
        redrive = props.get("RedrivePolicy", {})
        if redrive.get("maxReceiveCount", 0) < 5:
            problems.append(f"queue {name}: maxReceiveCount below 5")
    functions = [r for r in by_type.get("AWS::Serverless::Function", [])]
    sqs_sources = [ev for fn in functions for ev in fn["Properties"].get("Events", {}).values()
                   if ev.get("Type") == "SQS"]
    if not sqs_sources:
        problems.append("no SQS event source in the template")
    for ev in sqs_sources:
        if ev["Properties"].get("FunctionResponseTypes") != ["ReportBatchItemFailures"]:
            problems.append(f"SQS event source without ReportBatchItemFailures: {ev['Properties']}")
    if not any(k.get("Properties", {}).get("EnableKeyRotation") for k in by_type.get("AWS::KMS::Key", [])):
        problems.append("no KMS key with rotation")
    if not by_type.get("AWS::SecretsManager::Secret"):
        problems.append("no secrets")
    api = resources.get("RestAPI", {}).get("Properties", {}).get("DefinitionBody", {})
    for path, operations in api.get("paths", {}).items():
        if not path.startswith(PROTECTED_PREFIXES):
            continue
        for method, operation in operations.items():
            if method in ("get", "post", "put", "patch", "delete") and not operation.get("security"):
                problems.append(f"{method.upper()} {path} has no API Gateway authorizer")
    return problems


def unzipped_size(zip_path: Path) -> int:
    with zipfile.ZipFile(zip_path) as archive:
        return sum(info.file_size for info in archive.infolist())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.package")
    parser.add_argument("--stage", default="prod")
    args = parser.parse_args(argv)
    out = BUILD / args.stage
    shutil.rmtree(out, ignore_errors=True)
    BUILD.mkdir(exist_ok=True)
    merge = BUILD / f"merge-{args.stage}.json"
    with merge.open("w") as fh:
        subprocess.run([sys.executable, "-m", "infra.template", "--stage", args.stage],
                       cwd=ROOT, stdout=fh, check=True)
    env = dict(os.environ, AWS_DEFAULT_REGION=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    run = subprocess.run([str(BIN / "chalice"), "package", "--stage", args.stage,
                          "--merge-template", str(merge), str(out)],
                         cwd=ROOT, env=env, capture_output=True, text=True)
    log = run.stdout + run.stderr
    (BUILD / f"package-{args.stage}.log").write_text(log)
    print(log.strip())
    if run.returncode != 0 or "Could not install dependencies" in log:
        print("FAIL: chalice could not package every dependency (see the log above)", file=sys.stderr)
        return 1
    template_path = out / "sam.json"
    lint = subprocess.run([str(BIN / "cfn-lint"), "--non-zero-exit-code", "error", str(template_path)],
                          capture_output=True, text=True)
    print(lint.stdout.strip() or "cfn-lint: no errors")
    if lint.returncode != 0:
        print("FAIL: cfn-lint", lint.stderr, file=sys.stderr)
        return 1
    problems = check_template(json.loads(template_path.read_text()), args.stage)
    for problem in problems:
        print(f"FAIL: {problem}", file=sys.stderr)
    if problems:
        return 1
    zip_path = out / "deployment.zip"
    zipped, unzipped = zip_path.stat().st_size, unzipped_size(zip_path)
    print(f"package: {zip_path.relative_to(ROOT)} zipped {zipped / 2**20:.1f} MiB, "
          f"unzipped {unzipped / 2**20:.1f} MiB (Lambda limit {LAMBDA_UNZIPPED_LIMIT / 2**20:.0f} MiB)")
    if unzipped > LAMBDA_UNZIPPED_LIMIT:
        print("FAIL: unzipped package over Lambda's limit", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
