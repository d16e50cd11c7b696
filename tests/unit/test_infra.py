"""The deploy template and policies are generated from the one set of definitions."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from chalicelib.core import config
from chalicelib.core.db import TABLES
from chalicelib.core.resources import QUEUES
from infra import policy, template
from infra.package import check_template
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
