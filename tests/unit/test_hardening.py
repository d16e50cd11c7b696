"""The deployed template answers every finding of a security scan: fixed, or skipped with a reason.

Checked on the template `chalice package --merge-template` writes for `prod` (built without
the zip, in a subprocess so the stage's environment is its own). `make package` runs checkov
itself on the real package; these tests pin down what it relies on.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

from pathlib import Path

import pytest

from chalicelib.core.resources import SECRETS

from infra import hardening
from infra.package import checkov_verdict, run_checkov
from infra.stage import ROOT

# Every skip in the template, by resource and check. A new skip is a decision: add it here.
EXPECTED_SKIPS = {
    **{(fn, check): None for fn in ("APIHandler", "BearerAuthorizer")
       for check in ("CKV_AWS_117", "CKV_AWS_173", "CKV_AWS_116", "CKV_AWS_115")},
    **{(fn, check): None for fn in ("NotificationConsumer", "DisbursementConsumer", "CloseOfBusinessConsumer",
                                    "ReminderConsumer")
       for check in ("CKV_AWS_117", "CKV_AWS_173", "CKV_AWS_116", "CKV_AWS_115")},
    **{(fn, check): None for fn in ("DisbursementSweep", "CloseOfBusiness", "Reminders", "RepaymentReconciler",
                                    "ModelMonitor", "PortfolioCheck")
       for check in ("CKV_AWS_117", "CKV_AWS_173")},
    ("RestAPI", "CKV_AWS_120"): None,
    ("LedgerAnchorBucket", "CKV_AWS_18"): None,  # one locked object a day: nothing for a log to catch
    ("WebBucket", "CKV_AWS_18"): None,  # the page's code, which every visitor downloads anyway
    # no WAF (the API is reachable around it), no CloudFront log (the API logs its requests),
    # the *.cloudfront.net certificate (TLSv1 policy until a custom domain)
    ("WebDistribution", "CKV_AWS_68"): None, ("WebDistribution", "CKV_AWS_86"): None,
    ("WebDistribution", "CKV_AWS_174"): None,
    # sns:Publish of an SMS names no resource (infra/IAM.md)
    ("ApiHandlerRole", "CKV_AWS_111"): None, ("NotificationConsumerRole", "CKV_AWS_111"): None,
}
JOBS = {"DisbursementSweep", "CloseOfBusiness", "Reminders", "RepaymentReconciler", "ModelMonitor", "PortfolioCheck"}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The prod template and what `check_template` says of it, each from a fresh interpreter
    (both set the stage's environment, which must not leak into this test process)."""
    path = tmp_path_factory.mktemp("sam") / "sam.json"
    subprocess.run([sys.executable, "-m", "infra.package", "--stage", "prod", "--template-only",
                    "--output", str(path)], cwd=ROOT, check=True, capture_output=True)
    checked = subprocess.run([sys.executable, "-c", "import json, sys; from infra.package import "
                              "check_template; print(json.dumps(check_template(json.load(open(sys.argv[1])), "
                              "'prod')))", str(path)], cwd=ROOT, check=True, capture_output=True, text=True)
    return json.loads(path.read_text())["Resources"], json.loads(checked.stdout.splitlines()[-1]), path


@pytest.fixture(scope="module")
def prod(built):
    return built[0]


def _of_type(resources, kind):
    return {name: res for name, res in resources.items() if res["Type"] == kind}


def _key_of(resources, ref):
    """The KMS key a `Ref` or `Fn::GetAtt [.., Arn]` points to."""
    name = ref["Ref"] if "Ref" in ref else ref["Fn::GetAtt"][0]
    assert resources[name]["Type"] == "AWS::KMS::Key", name
    return name, resources[name]["Properties"]


def _only_the_account_administers(policy):
    statements = policy["Statement"]
    admin = [s for s in statements if s.get("Sid") == "AccountAdministers"]
    assert admin and admin[0]["Principal"] == {
        "AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}}
    return [s for s in statements if s.get("Sid") != "AccountAdministers"]


def test_the_merged_template_passes_the_package_checks(built):
    assert built[1] == []


def test_every_queue_and_dead_letter_queue_is_on_the_queue_key(prod):
    queues = _of_type(prod, "AWS::SQS::Queue")
    assert {q["Properties"]["QueueName"] for q in queues.values()} == {
        "lending-prod-disbursements", "lending-prod-disbursements-dlq", "lending-prod-notifications",
        "lending-prod-notifications-dlq", "lending-prod-closing", "lending-prod-closing-dlq",
        "lending-prod-reminding", "lending-prod-reminding-dlq", "lending-prod-jobs-dlq"}
    for queue in queues.values():
        assert "SqsManagedSseEnabled" not in queue["Properties"]
        name, key = _key_of(prod, queue["Properties"]["KmsMasterKeyId"])
        assert name == "QueueKey" and key["EnableKeyRotation"] is True
    # IAM decides who uses it: the key policy names no role (roles refer to the key).
    assert _only_the_account_administers(prod["QueueKey"]["Properties"]["KeyPolicy"]) == []


def test_every_secret_is_on_the_secret_key(prod):
    secrets = _of_type(prod, "AWS::SecretsManager::Secret")
    assert len(secrets) == len(SECRETS) == 9
    for secret in secrets.values():
        name, key = _key_of(prod, secret["Properties"]["KmsKeyId"])
        assert name == "SecretKey" and key["EnableKeyRotation"] is True
    assert _only_the_account_administers(prod["SecretKey"]["Properties"]["KeyPolicy"]) == []
    assert prod["SecretKeyAlias"]["Properties"] == {"AliasName": "alias/lending-prod-secrets",
                                                    "TargetKeyId": {"Ref": "SecretKey"}}


def test_scheduled_jobs_fail_into_the_jobs_dlq_and_never_run_twice_at_once(prod):
    functions = _of_type(prod, "AWS::Serverless::Function")
    scheduled = {name for name, fn in functions.items()
                 if any(ev["Type"] == "Schedule" for ev in fn["Properties"].get("Events", {}).values())}
    assert scheduled == JOBS
    for name, fn in functions.items():
        props = fn["Properties"]
        if name in JOBS:
            assert props["DeadLetterQueue"] == {"Type": "SQS", "TargetArn": {
                "Fn::GetAtt": ["JobsDeadLetterQueue", "Arn"]}}
            assert props["ReservedConcurrentExecutions"] == 1
        else:  # synchronous or SQS-driven: a function DLQ would never receive anything
            assert "DeadLetterQueue" not in props
            assert "ReservedConcurrentExecutions" not in props
    dlq = prod["JobsDeadLetterQueue"]["Properties"]
    assert dlq["MessageRetentionPeriod"] == 14 * 24 * 3600


def test_the_api_is_traced_and_access_logged_to_an_encrypted_log_group(prod):
    api = prod["RestAPI"]
    assert api["Properties"]["TracingEnabled"] is True
    assert "ApiGatewayAccount" in api["DependsOn"]
    setting = api["Properties"]["AccessLogSetting"]
    assert setting["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogs", "Arn"]}
    fields = json.loads(setting["Format"])
    assert {"requestId", "ip", "method", "resource", "status", "caller", "principal"} <= set(fields)
    # never a header, a query string or a body: they hold tokens and personal data
    assert not any(word in value for value in fields.values()
                   for word in ("$input", "header", "querystring", "requestOverride", "body"))
    group = prod["ApiAccessLogs"]["Properties"]
    assert group["RetentionInDays"] >= 365
    name, key = _key_of(prod, group["KmsKeyId"])
    assert name == "LogKey" and key["EnableKeyRotation"] is True
    [logs] = _only_the_account_administers(key["KeyPolicy"])
    assert logs["Principal"] == {"Service": {"Fn::Sub": "logs.${AWS::Region}.${AWS::URLSuffix}"}}
    assert logs["Condition"]["ArnEquals"]["kms:EncryptionContext:aws:logs:arn"]["Fn::Sub"].endswith(
        ":log-group:" + group["LogGroupName"])
    role = prod["ApiGatewayLogsRole"]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "apigateway.amazonaws.com"}
    assert prod["ApiGatewayAccount"]["Properties"]["CloudWatchRoleArn"] == {
        "Fn::GetAtt": ["ApiGatewayLogsRole", "Arn"]}


def test_every_skip_is_one_we_decided_and_says_why(prod):
    found = {}
    for name, res in prod.items():
        for skip in res.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert len(skip["comment"]) >= 80, (name, skip)  # a reason, not a shrug
            found[(name, skip["id"])] = None
    assert found == EXPECTED_SKIPS
    # and none of them hides what the template fixed
    fixed = {"CKV_AWS_27", "CKV_AWS_149", "CKV_AWS_73", "CKV_AWS_76", "CKV_AWS_158", "CKV_AWS_66"}
    assert not {check for _, check in found} & fixed
    assert not {(fn, "CKV_AWS_116") for fn in JOBS} & set(found)


def test_every_function_chalice_packages_is_answered(prod):
    from app import app
    functions = set(_of_type(prod, "AWS::Serverless::Function"))
    assert set(hardening.function_kinds(app)) == functions
    # the merge adds no typeless resource (a patch for a function chalice does not make)
    assert all("Type" in res for res in prod.values())


def _finding(check, resource):
    return {"check_id": check, "resource": resource, "check_name": "n"}


@pytest.mark.parametrize("failed", [
    [],
    [_finding("CKV_AWS_27", "AWS::SQS::Queue.Q")],
    [_finding("CKV_AWS_111", "AWS::IAM::Role.ApiHandlerRole"), _finding("CKV_AWS_117", "AWS::IAM::Role.R")],
])
def test_checkov_verdict_fails_on_every_finding(failed):
    report = {"check_type": "cloudformation", "results": {"failed_checks": failed},
              "summary": {"passed": 3, "failed": len(failed), "skipped": 1, "parsing_errors": 0,
                          "checkov_version": "3.3.30"}}
    failures, line = checkov_verdict(report)
    assert len(failures) == len(failed)
    assert "3 passed" in line and f"{len(failed)} failed" in line
    assert checkov_verdict([report]) == (failures, line)  # several frameworks: a list


def test_the_sms_roles_skip_only_the_unconstrained_write_check_with_its_reason(prod):
    """sns:Publish to a phone number cannot name a resource; nothing else is skipped on a role."""
    roles = {name: res for name, res in prod.items() if res.get("Metadata", {}).get("checkov")
             and name.endswith("Role") and name != "ApiGatewayLogsRole"}
    assert set(roles) == {"ApiHandlerRole", "NotificationConsumerRole"}
    for res in roles.values():
        skips = res["Metadata"]["checkov"]["skip"]
        assert [s["id"] for s in skips] == ["CKV_AWS_111"] and "PhoneNumber" in skips[0]["comment"]


def test_checkov_verdict_fails_on_a_template_it_could_not_parse():
    report = {"results": {"failed_checks": [], "parsing_errors": ["build/prod/sam.json"]},
              "summary": {"passed": 0, "failed": 0, "skipped": 0, "parsing_errors": 1}}
    assert checkov_verdict(report)[0] == ["checkov could not parse build/prod/sam.json"]


def test_checkov_3_passes_the_prod_template_with_every_other_finding_answered_in_it(built):
    """What `make package` runs, here on every `make test` (which installs checkov's venv): a
    new resource or property that checkov flags fails the suite, not only a deploy."""
    checkov = Path(os.environ.get("CHECKOV") or ROOT / ".venv-checkov" / "bin" / "checkov")
    assert os.access(checkov, os.X_OK), f"no checkov at {checkov}: run `make test`, which installs it"
    assert run_checkov(built[2], checkov) == []


def test_make_package_installs_checkov_3_in_its_own_venv():
    pins = [line for line in (ROOT / "requirements-checkov.txt").read_text().splitlines()
            if line and not line.startswith("#")]
    assert len(pins) == 1 and pins[0].startswith("checkov==3.")
    plan = subprocess.run(["make", "-n", "package", "STAGE=prod", "CHECKOV_VENV=/nonexistent-ckv"],
                          cwd=ROOT, capture_output=True, text=True).stdout
    assert "/nonexistent-ckv/bin/python -m pip install -q -r requirements-checkov.txt" in plan
    assert "--checkov /nonexistent-ckv/bin/checkov" in plan


def test_only_the_stage_operator_roles_reach_ops_through_api_gateway(prod):
    role = {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/lending-prod-operator"}
    env = prod["APIHandler"]["Properties"]["Environment"]["Variables"]
    assert env["OPERATOR_ROLE_ARNS"] == role  # resolved to this account's role at deploy time
    others = [fn for name, fn in prod.items() if fn["Type"] == "AWS::Serverless::Function" and name != "APIHandler"]
    assert all("OPERATOR_ROLE_ARNS" not in fn["Properties"]["Environment"]["Variables"] for fn in others)
    policy = prod["RestAPI"]["Properties"]["DefinitionBody"]["x-amazon-apigateway-policy"]
    allow, deny = policy["Statement"]
    assert (allow["Effect"], allow["Principal"], deny["Effect"], deny["Principal"]) == ("Allow", "*", "Deny", "*")
    assert deny["Resource"]["Fn::Sub"].endswith(":*/*/*/v1/ops/*")
    assert deny["Condition"] == {"ArnNotEquals": {"aws:PrincipalArn": [role]}}
    # and the ops routes keep API Gateway's IAM authorizer (SigV4), the others the bearer one
    paths = prod["RestAPI"]["Properties"]["DefinitionBody"]["paths"]
    for path, operations in paths.items():
        for method, operation in operations.items():
            if method in ("get", "post") and path.startswith("/v1/ops/"):
                assert operation["security"] == [{"sigv4": []}], (path, method)


def test_with_no_operator_role_configured_the_edge_refuses_ops_to_everyone():
    policy = hardening.api_resource_policy([])
    deny = policy["Statement"][1]
    assert deny["Effect"] == "Deny" and "Condition" not in deny
