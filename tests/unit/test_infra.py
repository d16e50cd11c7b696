"""The deploy template and policies are generated from the one set of definitions."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from datetime import datetime, timedelta

import pytest

from chalicelib.core import config
from chalicelib.adapters.db import TABLES
from chalicelib.core.resources import QUEUES
from infra import policy, template
from infra.package import check_template, ship_bytecode
from infra.pump import next_fire
from infra.stage import CHALICE_CONFIG, ROOT, function_setting


@pytest.fixture(scope="module")
def built():
    return template.build("local")


@pytest.fixture(scope="module")
def merge(built):
    return built["Resources"]


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


def test_sqs_consumers_are_capped_by_the_event_source_not_by_reserved_concurrency(merge):
    """Reserved concurrency throttles the SQS poller, and throttled receives push messages to
    the dead-letter queue (lost reminders); the event source's MaximumConcurrency does not."""
    from app import app
    cfg = json.loads(CHALICE_CONFIG.read_text())
    specs = {config.queue_name(spec.key): spec for spec in QUEUES}
    for source in (s for s in app.event_sources if type(s).__name__ == "SQSEventConfig"):
        logical = template.camel(source.name)
        scaling = merge[logical]["Properties"]["Events"][f"{logical}SqsEventSource"]["Properties"]["ScalingConfig"]
        assert scaling == {"MaximumConcurrency": specs[source.queue].max_concurrency}
        assert 2 <= scaling["MaximumConcurrency"] <= 1000  # SQS's allowed range
        for scope in [cfg, *cfg["stages"].values()]:
            assert "reserved_concurrency" not in scope.get("lambda_functions", {}).get(source.name, {})
            assert "reserved_concurrency" not in scope
    assert {s.key: s.max_concurrency for s in QUEUES} == {"disbursements": 2, "notifications": 5, "closing": 10,
                                                               "reminding": 5}


def _packaged(merge, **changes):
    """A packaged-looking template: the merge template plus what chalice adds to a consumer."""
    resources = json.loads(json.dumps(merge))
    consumer = resources["NotificationConsumer"]
    consumer["Type"] = "AWS::Serverless::Function"
    consumer["Properties"]["Events"]["NotificationConsumerSqsEventSource"]["Type"] = "SQS"
    for key, value in changes.items():
        consumer["Properties"][key] = value
    return {"Resources": {k: v for k, v in resources.items() if "Type" in v}}


def test_check_template_refuses_a_consumer_without_maximum_concurrency_or_with_reservations(merge):
    def problems_of(template_):
        return [p for p in check_template(template_, "local") if "oncurrency" in p]

    assert problems_of(_packaged(merge)) == []
    reserved = _packaged(merge, ReservedConcurrentExecutions=5)
    assert any("reserved concurrency" in p for p in problems_of(reserved))
    unscaled = _packaged(merge)
    del unscaled["Resources"]["NotificationConsumer"]["Properties"]["Events"][
        "NotificationConsumerSqsEventSource"]["Properties"]["ScalingConfig"]
    assert any("MaximumConcurrency" in p for p in problems_of(unscaled))
    too_low = _packaged(merge)
    too_low["Resources"]["NotificationConsumer"]["Properties"]["Events"][
        "NotificationConsumerSqsEventSource"]["Properties"]["ScalingConfig"]["MaximumConcurrency"] = 1
    assert any("MaximumConcurrency" in p for p in problems_of(too_low))


STAGES = ("local", "dev", "prod")


def _functions():
    return policy.function_names()


def test_committed_policies_are_the_generated_ones():
    for stage in STAGES:
        for function in _functions():
            committed = (CHALICE_CONFIG.parent / policy.policy_file(stage, function)).read_text()
            assert committed == policy.render(stage, function), f"run `make policies` ({stage}/{function})"
    assert set(policy.NEEDS) == set(_functions())


def test_every_function_of_every_stage_names_a_policy_of_its_own():
    cfg = json.loads(CHALICE_CONFIG.read_text())
    for name, stage in cfg["stages"].items():
        assert stage["autogen_policy"] is False
        # no stage-wide fallback: a function without its own entry makes `chalice package` fail
        assert "iam_policy_file" not in stage and "iam_policy_file" not in cfg
        assert not (CHALICE_CONFIG.parent / f"policy-{name}.json").exists()
        files = [function_setting(name, fn, "iam_policy_file") for fn in _functions()]
        assert files == [policy.policy_file(name, fn) for fn in _functions()]
        documents = {(CHALICE_CONFIG.parent / f).read_text() for f in files}
        assert len(documents) == len(files), f"{name}: two functions share a policy"


def _resources(document):
    for statement in document["Statement"]:
        for resource in statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]:
            yield statement, resource


@pytest.mark.parametrize("stage", STAGES)
def test_policies_name_the_stage_s_own_resources_and_star_only_where_iam_md_says_why(stage):
    prefix = f"lending-{stage}"
    reasons = (ROOT / "infra" / "IAM.md").read_text()
    for function in _functions():
        for statement, resource in _resources(policy.policy(stage, function)):
            assert not any("*" in a for a in statement["Action"]), statement
            if resource == "*":
                assert f"| `{statement['Sid']}` |" in reasons, f"{function}: {statement['Sid']} has no reason in IAM.md"
            elif "Fn::Sub" in resource:
                # table/<prefix>-..., <queue>, secret:<prefix>/..., log-group:/aws/lambda/<prefix>-...
                assert re.search(rf"[:/]{re.escape(prefix)}[-/]", resource["Fn::Sub"]), resource
            else:
                assert resource in [{"Fn::GetAtt": [key, "Arn"]}  # the template's customer managed keys
                                    for key in ("DataKey", "PiiKey", "QueueKey", "SecretKey")], resource


def _allowed(stage, function, action, resource):
    from infra import iam_check
    dep = iam_check.Deployment(stage, f"lending-{stage}", template.build("local")["Resources"], {}, "test")
    allow, deny = iam_check.grants(policy.policy(stage, function), dep.resources)
    request = iam_check.Request(action, resource)
    return any(g.allows(request) for g in allow) and not any(g.allows(request) for g in deny)


@pytest.mark.parametrize("function", ["bearer_authorizer", "notification_consumer"])
def test_the_authorizer_and_the_notification_consumer_cannot_read_signing_or_payment_secrets(function):
    from infra.iam_check import ACCOUNT, REGION
    secret = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:lending-prod/{{}}-Ab12Cd"
    for key in ("jwt", "payout", "wallet", "hmac", "wechat", "realname", "ops"):
        assert not _allowed("prod", function, "secretsmanager:GetSecretValue", secret.format(key)), key
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/lending-prod-{{}}"
    for name in ("loans", "ledger", "credit-lines", "repayments", "idempotency", "applications"):
        assert not _allowed("prod", function, "dynamodb:GetItem", table.format(name)), name
    can_verify = _allowed("prod", function, "secretsmanager:GetSecretValue", secret.format("jwks"))
    assert can_verify == (function == "bearer_authorizer")


def test_every_function_is_named_and_owns_its_log_group(merge):
    from infra.stage import lambda_name, logical_id
    for function in _functions():
        entry = merge[logical_id(function)]
        name = entry["Properties"]["FunctionName"]
        assert name == lambda_name("lending-local", function)
        group = merge[entry["DependsOn"][-1]]
        assert group["Type"] == "AWS::Logs::LogGroup"
        assert group["Properties"]["LogGroupName"] == f"/aws/lambda/{name}"
        assert group["Properties"]["RetentionInDays"] >= 365
        assert group["Properties"]["KmsKeyId"] == {"Fn::GetAtt": ["FunctionLogKey", "Arn"]}
    logs_may = merge["FunctionLogKey"]["Properties"]["KeyPolicy"]["Statement"][1]
    assert logs_may["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]["Fn::Sub"].endswith(
        ":log-group:/aws/lambda/lending-local-*")


def test_every_path_sends_undeclared_methods_to_the_function_and_preflights_list_allow(merge):
    """Deployed, a method a path does not declare is answered by the function (405 METHOD_NOT_ALLOWED
    with Allow), as the local server does, not by the gateway's 403 Missing Authentication Token."""
    from chalicelib.api.http import ROUTES, allowed_methods, cors_enabled
    paths = merge["RestAPI"]["Properties"]["DefinitionBody"]["paths"]
    assert set(paths) == {doc.path for doc in ROUTES}
    for path, entry in paths.items():
        any_method = entry["x-amazon-apigateway-any-method"]["x-amazon-apigateway-integration"]
        assert any_method["type"] == "aws_proxy" and "${APIHandler.Arn}" in any_method["uri"]["Fn::Sub"]
        if cors_enabled(path):
            allow = entry["options"]["x-amazon-apigateway-integration"]["responses"]["default"][
                "responseParameters"]["method.response.header.Allow"]
            assert allow == "'" + ",".join(allowed_methods(path)) + "'"
        else:
            assert "options" not in entry and path.startswith("/v1/ops/")


def test_the_gateways_own_answers_are_the_contracts_body_and_readable_by_browsers(merge):
    answers = {r["Properties"]["ResponseType"]: r["Properties"] for r in merge.values()
               if r.get("Type") == "AWS::ApiGateway::GatewayResponse"}
    assert answers["MISSING_AUTHENTICATION_TOKEN"]["StatusCode"] == "404"
    for props in answers.values():
        body = json.loads(props["ResponseTemplates"]["application/json"])
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
        assert props["ResponseParameters"] == {
            "gatewayresponse.header.Access-Control-Allow-Origin": "'*'"}


def test_check_template_reports_what_is_missing(merge):
    # A template with no SQS event sources and no tables fails the package check.
    packaged = {"Resources": {k: v for k, v in merge.items() if v.get("Type") == "AWS::SQS::Queue"}}
    packaged["Resources"]["RestAPI"] = {"Type": "AWS::Serverless::Api", "Properties": {"DefinitionBody": {"paths": {
        "/v1/me": {"get": {"security": [{"bearer_authorizer": []}]}, "head": {}}}}}}
    problems = check_template(packaged, "local")
    assert any("table" in p for p in problems)
    assert any("SQS event source" in p for p in problems)
    assert "/v1/me has no ANY method proxied to the API function" in problems
    assert "HEAD /v1/me has no API Gateway authorizer" in problems


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
            "notification_consumer", "disbursement_consumer", "close_of_business_consumer",
            "reminder_consumer", "portfolio_check"} <= set(functions)
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


def _packaged_like_chalice(stage):
    """What `chalice package` makes of the functions: a role each, holding its policy file."""
    resources = {}
    for function in _functions():
        role = f"Role{function}"
        document = json.loads((CHALICE_CONFIG.parent / policy.policy_file(stage, function)).read_text())
        resources[role] = {"Type": "AWS::IAM::Role", "Properties": {"Policies": [
            {"PolicyName": role + "Policy", "PolicyDocument": document}]}}
        resources[f"Fn{function}"] = {"Type": "AWS::Serverless::Function", "Properties": {
            "Handler": "app.app" if function == "api_handler" else f"chalicelib.x.routes.{function}",
            "Role": {"Fn::GetAtt": [role, "Arn"]},
            "Environment": {"Variables": {"STAGE": stage, "RESOURCE_PREFIX": f"lending-{stage}"}}}}
    return {"Resources": resources}


def test_make_package_fails_when_a_role_lacks_its_own_policy():
    from infra.iam_check import policy_drift
    packaged = _packaged_like_chalice("prod")
    assert policy_drift(packaged, "prod") == []
    packaged["Resources"]["Rolereminders"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"].pop()
    packaged["Resources"]["Fnreminders"]["Properties"]["Role"] = {"Fn::GetAtt": ["Roleapi_handler", "Arn"]}
    problems = policy_drift(packaged, "prod")
    assert "two functions share a role" in problems
    assert any(p.startswith("reminders: its role's policy is not policies/prod/reminders.json") for p in problems)


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
    statements = policy.policy("prod", "model_monitor")["Statement"]
    writes = next(s for s in statements if s["Sid"] == "TableModelMonitoring")
    assert writes["Action"] == ["dynamodb:PutItem"]
    assert writes["Resource"]["Fn::Sub"].endswith("table/lending-prod-model-monitoring")
    reads = next(s for s in statements if s["Sid"] == "Indexes")
    assert reads["Action"] == ["dynamodb:Query"]
    assert [r["Fn::Sub"].rsplit(":", 1)[-1] for r in reads["Resource"]] == [
        "table/lending-prod-applications/index/by_day"]
    assert "model_monitor" in _event_functions()


def test_every_dead_letter_queue_and_job_failure_pages_the_alarm_topic(merge):
    """A message in a DLQ is a disbursement, a text or a day's job that failed every retry: an
    alarm on each (the consumers' and the jobs'), and on the failures the jobs count, all
    notifying one encrypted topic CloudWatch may publish to (its key policy included)."""
    from chalicelib.core.resources import QUEUES
    from infra import alarms
    dlqs = {logical for logical, r in merge.items() if r.get("Type") == "AWS::SQS::Queue"
            and r["Properties"]["QueueName"].endswith("-dlq")}
    assert len(dlqs) == len(QUEUES) + 1 and "JobsDeadLetterQueue" in dlqs
    all_alarms = {k: r["Properties"] for k, r in merge.items() if r.get("Type") == "AWS::CloudWatch::Alarm"}
    watched = {a["Dimensions"][0]["Value"]["Fn::GetAtt"][0] for a in all_alarms.values()
               if a.get("Namespace") == "AWS/SQS"}
    assert watched == dlqs
    for metric in ("CloseOfBusinessLoanFailed", "RepaymentReconcileFailed", "DisbursementFailed",
                   "ModelDriftPSI"):
        assert any(a["MetricName"] == metric for a in all_alarms.values()), metric
    # each page names a metric the code emits (a typo would be an alarm that never fires)
    sources = "\n".join(p.read_text() for p in (ROOT / "chalicelib").rglob("*.py"))
    for metric in alarms.PAGES:
        assert f'"{metric}"' in sources, metric
    for name, a in all_alarms.items():
        assert a["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
    topic = merge["AlarmTopic"]["Properties"]
    assert topic["KmsMasterKeyId"] == {"Ref": "AlarmKey"}
    grants = merge["AlarmKey"]["Properties"]["KeyPolicy"]["Statement"]
    assert any(g.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
               and {"kms:Decrypt", "kms:GenerateDataKey*"} <= set(g["Action"]) for g in grants)


def test_no_function_may_update_or_delete_a_ledger_entry():
    """The ledger is append-only (issue 16): its entries are written by conditional puts, and
    no function's policy grants UpdateItem, DeleteItem or BatchWriteItem (which deletes too)
    on the ledger table, in any stage."""
    for stage in ("local", "dev", "prod"):
        for function in policy.NEEDS:
            for statement in policy.policy(stage, function)["Statement"]:
                resources = statement["Resource"] if isinstance(statement["Resource"], list) \
                    else [statement["Resource"]]
                texts = [json.dumps(r) for r in resources]
                if any(t.endswith('-ledger"}') or "-ledger/index" in t for t in texts):
                    assert not {"dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem",
                                "dynamodb:PartiQLUpdate", "dynamodb:PartiQLDelete"} & set(statement["Action"]), \
                        (stage, function, statement)
    writers = {f for f, needs in policy.NEEDS.items() if "ledger" in needs.tables}
    assert writers >= {"api_handler", "close_of_business_consumer", "disbursement_consumer"}
    assert all(set(policy.NEEDS[f].tables["ledger"]) <= {"PutItem", "Query", "Scan", "GetItem"} for f in writers)


def test_the_anchor_bucket_keeps_every_day_in_compliance_mode_for_the_stages_retention(merge):
    bucket = merge["LedgerAnchorBucket"]["Properties"]
    assert bucket["ObjectLockEnabled"] is True
    rule = bucket["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]
    assert rule == {"Mode": "COMPLIANCE", "Days": 1}  # the local stage's; prod keeps ten years
    assert template.anchor_bucket("prod", "lending-prod")["LedgerAnchorBucket"]["Properties"][
        "ObjectLockConfiguration"]["Rule"]["DefaultRetention"]["Days"] == 3650
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    for function in ("APIHandler", "CloseOfBusiness"):
        assert merge[function]["Properties"]["Environment"]["Variables"]["ANCHOR_BUCKET"] == \
            bucket["BucketName"]
    statements = {s["Sid"]: s for s in policy.policy("prod", "close_of_business")["Statement"]}
    assert statements["AnchorObjects"]["Action"] == ["s3:GetObject", "s3:PutObject"]
    assert statements["AnchorObjects"]["Resource"]["Fn::Sub"].endswith(
        "lending-prod-ledger-anchors-${AWS::AccountId}/anchors/*")


def test_the_web_page_and_the_api_share_one_cloudfront_origin(merge):
    """The page (S3, under app/) and the API's stage behind one distribution: the page calls
    the API on its own origin, so no CORS and no API URL in the page (issue 18)."""
    from infra import web
    config = merge["WebDistribution"]["Properties"]["DistributionConfig"]
    origins = {origin["Id"]: origin for origin in config["Origins"]}
    assert set(origins) == {"web", "api"}
    assert origins["web"]["DomainName"] == {"Fn::GetAtt": ["WebBucket", "RegionalDomainName"]}
    assert origins["web"]["OriginAccessControlId"] == {"Fn::GetAtt": ["WebOriginAccessControl", "Id"]}
    assert origins["web"]["S3OriginConfig"] == {"OriginAccessIdentity": ""}  # no legacy OAI
    api = origins["api"]
    assert api["DomainName"] == {"Fn::Sub": "${RestAPI}.execute-api.${AWS::Region}.${AWS::URLSuffix}"}
    assert api["OriginPath"] == "/local"  # the stage chalice deploys the API to
    assert web.api_stage_name("prod") == "prod"
    assert api["CustomOriginConfig"]["OriginProtocolPolicy"] == "https-only"
    assert api["CustomOriginConfig"]["OriginSSLProtocols"] == ["TLSv1.2"]

    default = config["DefaultCacheBehavior"]
    assert default["TargetOriginId"] == "web" and default["AllowedMethods"] == ["GET", "HEAD"]
    [index] = default["FunctionAssociations"]
    assert index["EventType"] == "viewer-request"
    assert index["FunctionARN"] == {"Fn::GetAtt": ["WebIndexFunction", "FunctionMetadata.FunctionARN"]}
    assert "uri + 'index.html'" in merge["WebIndexFunction"]["Properties"]["FunctionCode"]
    assert "CustomErrorResponses" not in config  # they would replace the API's own error bodies

    behaviours = {b["PathPattern"]: b for b in config["CacheBehaviors"]}
    assert set(behaviours) == {"/v1/*", "/health", "/openapi.json"}
    for behaviour in behaviours.values():
        assert behaviour["TargetOriginId"] == "api"
        assert behaviour["CachePolicyId"] == "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"  # CachingDisabled
        # AllViewerExceptHostHeader: Authorization, Idempotency-Key, Accept-Language, the query
        assert behaviour["OriginRequestPolicyId"] == "b689b0a8-53d0-40ab-baf2-68738e2966ac"
        assert set(behaviour["AllowedMethods"]) == {"GET", "HEAD", "OPTIONS", "PUT", "POST", "PATCH", "DELETE"}
    for behaviour in [default, *behaviours.values()]:
        assert behaviour["ViewerProtocolPolicy"] == "redirect-to-https"
        assert behaviour["ResponseHeadersPolicyId"] == {"Ref": "WebSecurityHeaders"}


def test_the_web_responses_carry_the_security_headers(merge):
    headers = merge["WebSecurityHeaders"]["Properties"]["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]
    assert headers["StrictTransportSecurity"]["AccessControlMaxAgeSec"] >= 31536000
    assert headers["FrameOptions"]["FrameOption"] == "DENY"
    assert "ContentTypeOptions" in headers
    csp = headers["ContentSecurityPolicy"]["ContentSecurityPolicy"]
    assert csp.startswith("default-src 'self';") and "img-src 'self' data:" in csp
    assert "unsafe" not in csp and "http" not in csp  # no inline code, no other origin
    assert all(value["Override"] is True for value in headers.values())


def test_the_web_bucket_is_private_and_only_the_distribution_reads_it(merge):
    bucket = merge["WebBucket"]["Properties"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
        "ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    oac = merge["WebOriginAccessControl"]["Properties"]["OriginAccessControlConfig"]
    assert (oac["OriginAccessControlOriginType"], oac["SigningBehavior"], oac["SigningProtocol"]) == \
        ("s3", "always", "sigv4")
    policy = merge["WebBucketPolicy"]["Properties"]
    assert policy["Bucket"] == {"Ref": "WebBucket"}
    statements = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}
    assert set(statements) == {"TlsOnly", "TheDistributionReadsThePage"}
    tls = statements["TlsOnly"]
    assert (tls["Effect"], tls["Condition"]) == ("Deny", {"Bool": {"aws:SecureTransport": "false"}})
    read = statements["TheDistributionReadsThePage"]
    assert read["Effect"] == "Allow" and read["Action"] == "s3:GetObject"
    assert read["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert read["Resource"] == {"Fn::Sub": "${WebBucket.Arn}/app/*"}
    assert read["Condition"] == {"StringEquals": {"AWS:SourceArn": {"Fn::Sub": (
        "arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/${WebDistribution}")}}}


def test_the_stack_outputs_the_page_url_and_what_publish_web_needs(built):
    outputs = built["Outputs"]
    assert outputs["WebAppURL"]["Value"] == {"Fn::Sub": "https://${WebDistribution.DomainName}/app/"}
    assert outputs["WebBucketName"]["Value"] == {"Ref": "WebBucket"}
    assert outputs["WebDistributionId"]["Value"] == {"Ref": "WebDistribution"}
