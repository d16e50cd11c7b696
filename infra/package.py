"""`make package`: chalice package with the merge template, then check what chalice won't.

    python -m infra.package --stage prod

Fails when chalice could not install a dependency (it still exits 0), when cfn-lint finds an
error, when the template lacks the tables, queues, DLQs, partial batch responses or the SQS
consumers' maximum concurrency, or when checkov 3 (its own venv, `.venv-checkov`, which the
Makefile installs: checkov pins a boto3 the functions cannot use) reports a failed check; every
check it does not pass is answered in `infra/hardening.py`. Prints the deployment zip's size,
zipped and unzipped, against Lambda's 250 MB unzipped limit.

    python -m infra.package --stage prod --template-only   # the same checks in seconds, no zip

The zip then gets the bytecode of every module (`__pycache__/*.cpython-312.pyc`, unchecked-hash):
Lambda's /var/task is read-only, so without it every cold start compiles chalice, botocore,
pydantic and onnxruntime's Python from source (about half of the API handler's cold start; see
bench/README.md). The build's interpreter must be the functions' runtime (python3.12), or the
bytecode would be ignored.
"""
from __future__ import annotations

import argparse
import compileall
import contextlib
import io
import json
import os
import py_compile
import shutil
import stat
import subprocess
import sys
import tempfile
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
    from chalicelib.adapters.db import TABLES
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
        concurrency = ev["Properties"].get("ScalingConfig", {}).get("MaximumConcurrency")
        if not isinstance(concurrency, int) or not 2 <= concurrency <= 1000:
            problems.append(f"SQS event source without ScalingConfig.MaximumConcurrency (2-1000): "
                            f"{ev['Properties']}")
    for name, res in resources.items():
        if res["Type"] == "AWS::Serverless::Function" and "ReservedConcurrentExecutions" in res["Properties"] \
                and any(ev.get("Type") == "SQS" for ev in res["Properties"].get("Events", {}).values()):
            problems.append(f"{name}: reserved concurrency on an SQS consumer throttles its event source "
                            "(messages go to the DLQ); cap it with ScalingConfig.MaximumConcurrency")
    if not any(k.get("Properties", {}).get("EnableKeyRotation") for k in by_type.get("AWS::KMS::Key", [])):
        problems.append("no KMS key with rotation")
    if not by_type.get("AWS::SecretsManager::Secret"):
        problems.append("no secrets")
    api = resources.get("RestAPI", {}).get("Properties", {}).get("DefinitionBody", {})
    for path, operations in api.get("paths", {}).items():
        # An undeclared method reaches the function (405 with Allow), not the gateway's 403.
        if operations.get("x-amazon-apigateway-any-method", {}).get(
                "x-amazon-apigateway-integration", {}).get("type") != "aws_proxy":
            problems.append(f"{path} has no ANY method proxied to the API function")
        if not path.startswith(PROTECTED_PREFIXES):
            continue
        for method, operation in operations.items():
            if method in ("get", "head", "post", "put", "patch", "delete") and not operation.get("security"):
                problems.append(f"{method.upper()} {path} has no API Gateway authorizer")
    return problems


def sam_template(stage: str, merge: dict[str, Any]) -> dict[str, Any]:
    """The template `chalice package --merge-template` writes, without building the zip.

    The same chalice steps (application graph, defaults, policies, swagger, event source
    permissions, SAM generator, deep merge) with the deployment package step replaced by a
    placeholder file name: a second or two instead of a pip install, so tests and
    `--template-only` see the deployed shape. Only `CodeUri` differs from the real package."""
    from chalice.cli.factory import CLIFactory
    from chalice.deploy import models
    from chalice.deploy.appgraph import ApplicationGraphBuilder, DependencyBuilder
    from chalice.deploy.deployer import (BaseDeployStep, BuildStage, InjectDefaults,
                                         LambdaEventSourcePolicyInjector, PolicyGenerator,
                                         SwaggerBuilder, WebsocketPolicyInjector)
    from chalice.deploy.swagger import CFNSwaggerGenerator
    from chalice.package import (ResourceBuilder, SAMTemplateGenerator, TemplateDeepMerger)
    from chalice.policy import AppPolicyGenerator
    from chalice.utils import OSUtils

    class NoZip(BaseDeployStep):
        def handle_deploymentpackage(self, config, resource):  # type: ignore[no-untyped-def]
            if isinstance(resource.filename, models.Placeholder):
                resource.filename = "./deployment.zip"

    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # as `make package`; no call is made
    factory = CLIFactory(project_dir=str(ROOT), environ=dict(os.environ))
    config = factory.create_config_obj(chalice_stage_name=stage)
    osutils = OSUtils()
    build_stage = BuildStage(steps=[
        InjectDefaults(), NoZip(),
        PolicyGenerator(policy_gen=AppPolicyGenerator(osutils=osutils), osutils=osutils),
        SwaggerBuilder(swagger_generator=CFNSwaggerGenerator()),
        LambdaEventSourcePolicyInjector(), WebsocketPolicyInjector()])
    resources = ResourceBuilder(ApplicationGraphBuilder(), DependencyBuilder(), build_stage) \
        .construct_resources(config, stage)
    template = SAMTemplateGenerator(config, factory.create_package_options()).generate(resources)
    return TemplateDeepMerger().merge(merge, template)


def ship_bytecode(zip_path: Path, runtime: str) -> int:
    """Add the compiled bytecode of every .py in the zip, in place; returns the modules added.

    unchecked-hash .pyc files are used without a look at the source's mtime (zip entries carry
    no reliable one). Any bytecode already in the zip is replaced."""
    ours = f"python{sys.version_info.major}.{sys.version_info.minor}"
    if runtime != ours:
        raise SystemExit(f"FAIL: the functions run {runtime}, this build runs {ours}: "
                         "its bytecode would be ignored; build with the runtime's Python")
    with tempfile.TemporaryDirectory(prefix="package-") as task:
        root = Path(task)
        with zipfile.ZipFile(zip_path) as archive:
            archive.extractall(root)
            # Bytecode chalice copied from a developer's tree (timestamp-checked, compiled from
            # another path) is dropped: every .pyc in the zip is ours, once.
            entries = [(info, archive.read(info)) for info in archive.infolist()
                       if not _is_bytecode(info.filename)]
        for stale in [path for path in root.rglob("*") if _is_bytecode(path.relative_to(root).as_posix())]:
            if stale.is_file():
                stale.unlink()
        with contextlib.redirect_stdout(io.StringIO()):
            # ddir: the path the runtime shows in tracebacks (Lambda unpacks to /var/task)
            compileall.compile_dir(root, ddir="/var/task", quiet=2, force=True,
                                   workers=os.cpu_count() or 1,
                                   invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
        compiled = sorted(path for path in root.rglob("*.pyc"))
        # Files that do not compile (templates, test fixtures written for Python 2) are never
        # imported by the functions; they stay source only.
        skipped = sum(1 for _ in root.rglob("*.py")) - len(compiled)
        staged = zip_path.with_suffix(".tmp")
        with zipfile.ZipFile(staged, "w", zipfile.ZIP_DEFLATED) as archive:
            for info, data in entries:
                archive.writestr(info, data)
            for path in compiled:
                info = zipfile.ZipInfo(path.relative_to(root).as_posix(), date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = (stat.S_IFREG | 0o644) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, path.read_bytes())
        with zipfile.ZipFile(staged) as archive:
            names = archive.namelist()
        if len(names) != len(set(names)):
            staged.unlink()
            raise SystemExit("FAIL: the zip would name a file twice")
        staged.replace(zip_path)
    print(f"bytecode: {len(compiled):,} modules compiled for {runtime}"
          + (f"; source only (does not compile): {skipped}" if skipped else ""))
    return len(compiled)


def _is_bytecode(name: str) -> bool:
    return name.endswith((".pyc", ".pyo")) or "__pycache__/" in name


def function_runtimes(template: dict[str, Any]) -> set[str]:
    return {res["Properties"].get("Runtime", "") for res in template["Resources"].values()
            if res["Type"] == "AWS::Serverless::Function"}


def unzipped_size(zip_path: Path) -> int:
    with zipfile.ZipFile(zip_path) as archive:
        return sum(info.file_size for info in archive.infolist())


def template_only(stage: str, output: Path) -> int:
    """`--template-only`: the template, without the zip, in a fresh interpreter (the stage's
    environment must be set before the app is imported)."""
    from infra.stage import apply_stage_env
    apply_stage_env(stage)
    from infra.template import build
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(sam_template(stage, build(stage)), indent=2) + "\n")
    return 0


def checkov_verdict(report: dict[str, Any] | list[dict[str, Any]]) -> tuple[list[str], str]:
    """(failures, summary line) from checkov's JSON report: every failed check fails."""
    reports = report if isinstance(report, list) else [report]
    failures = []
    counts = {"passed": 0, "failed": 0, "skipped": 0, "parsing_errors": 0}
    version = ""
    for one in reports:
        summary = one.get("summary", {})
        version = summary.get("checkov_version", version)
        for key in counts:
            counts[key] += int(summary.get(key, 0))
        for finding in one.get("results", {}).get("failed_checks", []):
            failures.append(f"{finding['check_id']} {finding['resource']}: {finding.get('check_name', '')}")
        for path in one.get("results", {}).get("parsing_errors", []):
            failures.append(f"checkov could not parse {path}")
    if counts["parsing_errors"] and not any("could not parse" in f for f in failures):
        failures.append(f"checkov: {counts['parsing_errors']} parsing error(s)")
    line = (f"checkov {version}: {counts['passed']} passed, {counts['failed']} failed, "
            f"{counts['skipped']} skipped with a reason in the template")
    return failures, line


def run_checkov(template_path: Path, checkov: Path) -> list[str]:
    """checkov 3 (CloudFormation checks) on the packaged template; the findings that fail."""
    if not os.access(checkov, os.X_OK):
        return [f"checkov not found at {checkov}: `make package` installs it into .venv-checkov"]
    scan = subprocess.run([str(checkov), "--file", str(template_path), "--framework", "cloudformation",
                           "--output", "json", "--skip-download"], capture_output=True, text=True)
    try:
        report = json.loads(scan.stdout)
    except ValueError:
        return [f"checkov did not answer JSON (exit {scan.returncode}): {scan.stderr.strip()[-2000:]}"]
    failures, line = checkov_verdict(report)
    print(line)
    return [f"checkov {finding}" for finding in failures]


def check_packaged(template_path: Path, stage: str, checkov: Path) -> list[str]:
    """cfn-lint, the app's own checks and checkov on a packaged template: its problems."""
    lint = subprocess.run([str(BIN / "cfn-lint"), "--non-zero-exit-code", "error", str(template_path)],
                          capture_output=True, text=True)
    print(lint.stdout.strip() or "cfn-lint: no errors")
    if lint.returncode != 0:
        return [f"cfn-lint {lint.stderr.strip()}"]
    template = json.loads(template_path.read_text())
    problems = check_template(template, stage)
    from infra.iam_check import policy_drift
    problems += policy_drift(template, stage)  # one role per function, each its own policy file
    runtimes = function_runtimes(template)
    if len(runtimes) != 1:
        problems.append(f"functions should share one runtime, found {sorted(runtimes)}")
    return problems + run_checkov(template_path, checkov)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.package")
    parser.add_argument("--stage", default="prod")
    parser.add_argument("--template-only", action="store_true",
                        help="only the template, without the zip: seconds, not minutes "
                             "(checked like the real one unless --output is given)")
    parser.add_argument("--output", type=Path, help="with --template-only: write it here, unchecked")
    parser.add_argument("--checkov", type=Path, default=ROOT / ".venv-checkov" / "bin" / "checkov")
    args = parser.parse_args(argv)
    out = BUILD / args.stage
    template_path = out / "sam.json"
    if args.template_only:
        if args.output:
            return template_only(args.stage, args.output)
        subprocess.run([sys.executable, "-m", "infra.package", "--stage", args.stage, "--template-only",
                        "--output", str(template_path)], cwd=ROOT, check=True)
        print(f"template: {template_path.relative_to(ROOT)} (no deployment zip)")
        problems = check_packaged(template_path, args.stage, args.checkov)
        for problem in problems:
            print(f"FAIL: {problem}", file=sys.stderr)
        return 1 if problems else 0
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
    problems = check_packaged(template_path, args.stage, args.checkov)
    for problem in problems:
        print(f"FAIL: {problem}", file=sys.stderr)
    if problems:
        return 1
    runtimes = function_runtimes(json.loads(template_path.read_text()))
    zip_path = out / "deployment.zip"
    ship_bytecode(zip_path, runtimes.pop())
    zipped, unzipped = zip_path.stat().st_size, unzipped_size(zip_path)
    print(f"package: {zip_path.relative_to(ROOT)} zipped {zipped / 2**20:.1f} MiB, "
          f"unzipped {unzipped / 2**20:.1f} MiB (Lambda limit {LAMBDA_UNZIPPED_LIMIT / 2**20:.0f} MiB)")
    if unzipped > LAMBDA_UNZIPPED_LIMIT:
        print("FAIL: unzipped package over Lambda's limit", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
