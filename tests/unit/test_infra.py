"""The deploy template and policies are generated from the one set of definitions."""
from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from datetime import datetime, timedelta

import pytest

from chalicelib.core import config
from chalicelib.core.db import TABLES
from chalicelib.core.resources import QUEUES
from infra import policy, template
from infra.package import check_template, ship_bytecode
from infra.pump import next_fire
from infra.stage import CHALICE_CONFIG, function_setting


@pytest.fixture(scope="module")
def merge():
    return template.build("local")["Resources"]


def test_every_model_has_a_table_with_pitr_kms_and_hash_key_first(merge):
    tables = {r["Properties"]["TableName"]: r["Properties"]
              for r in merge.values() if r.get("Type") == "AWS::DynamoDB::Table"}
    assert set(tables) == {m.Meta.table_name for m in TABLES}
    for props in tables.values():
        assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
        assert props["SSESpecification"] == {"SSEEnabled": True, "SSEType": "KMS",
                                             "KMSMasterKeyId": {"Ref": "DataKey"}}
        assert props["KeySchema"][0]["KeyType"] == "HASH"


def test_queues_have_dlqs_and_visibility_six_times_the_consumer_timeout(merge):
    queues = {r["Properties"]["QueueName"]: r["Properties"]
              for r in merge.values() if r.get("Type") == "AWS::SQS::Queue"}
    for spec in QUEUES:
        props = queues[config.queue_name(spec.key)]
        assert config.queue_name(spec.key) + "-dlq" in queues
        assert props["RedrivePolicy"]["maxReceiveCount"] >= 5
        timeout = function_setting("local", spec.consumer, "lambda_timeout")
        assert props["VisibilityTimeout"] >= 6 * timeout


def test_every_sqs_consumer_reports_partial_batch_failures(merge):
    from app import app
    consumers = [s.name for s in app.event_sources if type(s).__name__ == "SQSEventConfig"]
    assert consumers, "the app has SQS consumers"
    for name in consumers:
        logical = template.camel(name)
        events = merge[logical]["Properties"]["Events"]
        assert events[f"{logical}SqsEventSource"]["Properties"]["FunctionResponseTypes"] == \
            ["ReportBatchItemFailures"]
        assert merge[logical]["DependsOn"]


def test_committed_policies_are_the_generated_ones():
    for stage in json.loads(CHALICE_CONFIG.read_text())["stages"]:
        committed = (CHALICE_CONFIG.parent / f"policy-{stage}.json").read_text()
        assert committed == policy.render(stage), f"run `python -m infra.policy` ({stage})"


def test_policies_are_scoped_to_the_stage_prefix():
    doc = policy.policy("prod")
    for statement in doc["Statement"]:
        if statement["Sid"] in ("Tables", "Queues", "Secrets", "Logs", "TokenKeysCreatedOnFirstUse"):
            resources = statement["Resource"] if isinstance(statement["Resource"], list) \
                else [statement["Resource"]]
            assert all("lending-prod" in r for r in resources)


def test_stages_do_not_autogenerate_policies():
    cfg = json.loads(CHALICE_CONFIG.read_text())
    for name, stage in cfg["stages"].items():
        assert stage["autogen_policy"] is False
        assert stage["iam_policy_file"] == f"policy-{name}.json"


def test_check_template_reports_what_is_missing(merge):
    # A template with no SQS event sources and no tables fails the package check.
    packaged = {"Resources": {k: v for k, v in merge.items() if v.get("Type") == "AWS::SQS::Queue"}}
    problems = check_template(packaged, "local")
    assert any("table" in p for p in problems)
    assert any("SQS event source" in p for p in problems)


@pytest.mark.parametrize("expression, after, expected", [
    ("rate(1 minute)", "2027-01-10T01:00:30+00:00", "2027-01-10T01:01:00+00:00"),
    ("rate(5 minutes)", "2027-01-10T01:00:00+00:00", "2027-01-10T01:05:00+00:00"),
    ("cron(5 16 * * ? *)", "2027-01-10T01:00:00+00:00", "2027-01-10T16:05:00+00:00"),
    ("cron(0 1 * * ? *)", "2027-01-10T01:00:00+00:00", "2027-01-11T01:00:00+00:00"),
])
def test_schedule_expressions_fire_at_their_times(expression, after, expected):
    assert next_fire(expression, datetime.fromisoformat(after)) == datetime.fromisoformat(expected)
    assert next_fire(expression, datetime.fromisoformat(after)).tzinfo is not None


def _zip(path, files):
    with zipfile.ZipFile(path, "w") as archive:
        for name, (text, mode) in files.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            archive.writestr(info, text)


def test_the_package_carries_bytecode_that_the_runtime_uses_without_a_source_check(tmp_path, capsys):
    package = tmp_path / "deployment.zip"
    tag = sys.implementation.cache_tag
    _zip(package, {"pkg/__init__.py": ("", 0o644), "pkg/mod.py": ("X = 1\n", 0o644),
                   "tpl/broken.py": ("def {{ name }}(:\n", 0o644), "bin/tool": ("#!/bin/sh\n", 0o755),
                   # bytecode a developer's run left behind, which chalice copies as it is
                   f"pkg/__pycache__/mod.{tag}.pyc": ("stale", 0o644), "old/gone.pyc": ("stale", 0o644)})
    runtime = f"python{sys.version_info.major}.{sys.version_info.minor}"
    assert ship_bytecode(package, runtime) == 2
    assert "source only (does not compile): 1" in capsys.readouterr().out

    with zipfile.ZipFile(package) as archive:
        names = archive.namelist()
        infos = {info.filename: info for info in archive.infolist()}
    assert len(names) == len(set(names)) and "old/gone.pyc" not in infos
    with zipfile.ZipFile(package) as archive:
        archive.extractall(tmp_path / "task")
    assert {f"pkg/__pycache__/__init__.{tag}.pyc", f"pkg/__pycache__/mod.{tag}.pyc"} <= set(infos)
    assert not any(name.startswith("tpl/__pycache__") for name in infos)  # left as source
    assert infos["bin/tool"].external_attr >> 16 == 0o755                 # entries kept as they were
    pyc = (tmp_path / "task" / f"pkg/__pycache__/mod.{tag}.pyc").read_bytes()
    assert int.from_bytes(pyc[4:8], "little") == 0b01                     # hash-based, unchecked
    # The interpreter takes the shipped bytecode as is: a changed source is not even looked at.
    (tmp_path / "task" / "pkg" / "mod.py").write_text("X = 2\n")
    out = subprocess.run([sys.executable, "-S", "-B", "-c", "import pkg.mod; print(pkg.mod.X)"],
                         cwd=tmp_path / "task", capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"


def test_bytecode_for_another_runtime_is_refused(tmp_path):
    package = tmp_path / "deployment.zip"
    _zip(package, {"mod.py": ("X = 1\n", 0o644)})
    before = package.read_bytes()
    with pytest.raises(SystemExit, match="python3.11"):
        ship_bytecode(package, "python3.11")
    assert package.read_bytes() == before


def _event_functions() -> dict[str, object]:
    """Every scheduled function and queue consumer the app registers, by function name."""
    from chalice.app import ScheduledEventConfig, SQSEventConfig

    from app import app
    return {s.name: s for s in app.event_sources if isinstance(s, (ScheduledEventConfig, SQSEventConfig))}


@pytest.mark.parametrize("stage", ["local", "dev", "prod"])
def test_every_scheduled_function_and_consumer_has_an_explicit_timeout_and_memory(stage):
    """Without them a job gets chalice's defaults (60 s, 128 MB): a close of business that
    catches up after an outage would be killed midway, every day, at 60 s."""
    from chalice import Rate
    from chalice.app import ScheduledEventConfig

    from infra.stage import chalice_config

    cfg = chalice_config()
    functions = _event_functions()
    assert {"close_of_business", "reminders", "repayment_reconciler", "disbursement_sweep",
            "notification_consumer", "disbursement_consumer"} <= set(functions)
    for name, source in functions.items():
        explicit = {**cfg.get("lambda_functions", {}).get(name, {}),
                    **cfg["stages"][stage].get("lambda_functions", {}).get(name, {})}
        assert {"lambda_timeout", "lambda_memory_size"} <= set(explicit), f"{name} in {stage}: {explicit}"
        timeout = function_setting(stage, name, "lambda_timeout")
        assert isinstance(timeout, int) and 1 <= timeout <= 900, (name, timeout)  # Lambda's maximum
        assert 128 <= function_setting(stage, name, "lambda_memory_size") <= 10_240
        if isinstance(source, ScheduledEventConfig):
            # a job that fires every N minutes ends before the next run begins
            expression = source.schedule_expression
            if isinstance(expression, Rate):
                period = expression.value * {"MINUTES": 60, "HOURS": 3600, "DAYS": 86400}[expression.unit]
                assert timeout < period, (name, timeout, period)
    assert function_setting(stage, "close_of_business", "lambda_timeout") >= 300


def test_the_model_drift_alarm_watches_the_metric_the_weekly_job_emits(merge):
    """The weekly monitor (chalicelib.risk.monitor) emits ModelDriftPSI through Powertools'
    metrics, namespace and `service` dimension from the stage's environment: an alarm on any
    other name or dimension would never see a data point."""
    import inspect

    from chalicelib.risk import drift, monitor
    from infra.stage import stage_env
    alarm = merge["ModelDriftAlarm"]["Properties"]
    env = stage_env("local")
    assert merge["ModelDriftAlarm"]["Type"] == "AWS::CloudWatch::Alarm"
    assert alarm["MetricName"] == "ModelDriftPSI" and '"ModelDriftPSI"' in inspect.getsource(monitor)
    assert alarm["Namespace"] == env["POWERTOOLS_METRICS_NAMESPACE"]
    assert alarm["Dimensions"] == [{"Name": "service", "Value": env["POWERTOOLS_SERVICE_NAME"]}]
    assert alarm["Threshold"] == drift.ALARM == 0.25
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["TreatMissingData"] == "notBreaching"   # a week without data is no alarm


def test_the_weekly_model_monitor_fires_on_monday_at_two_in_shanghai():
    source = _event_functions()["model_monitor"]
    expression = source.schedule_expression.to_string()
    sunday = datetime.fromisoformat("2027-01-10T00:00:00+00:00")       # a Sunday
    fires = next_fire(expression, sunday)
    assert fires == datetime.fromisoformat("2027-01-10T18:00:00+00:00")  # Monday 02:00 +08:00
    assert next_fire(expression, fires) - fires == timedelta(days=7)


def test_the_model_monitoring_table_and_the_applications_by_day_index_are_deployed(merge):
    """The weekly job writes one item per model and week, and reads a week of decisions through
    the applications' by_day index (never a scan): both must exist in the template, and the
    stage's IAM policy must reach them."""
    from chalicelib.loans.models import ApplicationRecord
    from chalicelib.risk.models import ModelMonitorRecord
    tables = {r["Properties"]["TableName"]: r["Properties"]
              for r in merge.values() if r.get("Type") == "AWS::DynamoDB::Table"}
    monitoring = tables[ModelMonitorRecord.Meta.table_name]
    assert [k["AttributeName"] for k in monitoring["KeySchema"]] == ["model_sha256", "window_end"]
    indexes = {i["IndexName"]: i for i in tables[ApplicationRecord.Meta.table_name]
               ["GlobalSecondaryIndexes"]}
    assert [k["AttributeName"] for k in indexes["by_day"]["KeySchema"]] == ["decided_day", "decided_at"]
    assert set(indexes["by_day"]["Projection"]["NonKeyAttributes"]) >= {"decision", "status"}
    tables_statement = next(s for s in policy.policy("prod")["Statement"] if s["Sid"] == "Tables")
    assert "dynamodb:Query" in tables_statement["Action"] and "dynamodb:PutItem" in tables_statement["Action"]
    assert "arn:*:dynamodb:*:*:table/lending-prod-*/index/*" in tables_statement["Resource"]
    assert "model_monitor" in _event_functions()
