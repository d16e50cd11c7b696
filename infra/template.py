"""The CloudFormation merge template for `chalice package`, generated from the definitions.

    python -m infra.template --stage prod > build/merge-prod.json

Tables come from the pynamodb models, queues and secrets from `chalicelib.core.resources`,
timeouts from `.chalice/config.json`; nothing is described twice.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from infra.stage import apply_stage_env, visibility_timeout

DLQ_RETENTION_SECONDS = 14 * 24 * 3600
GATEWAY_RESPONSES = (
    ("UNAUTHORIZED", "401", "UNAUTHORIZED", "Sign in again."),
    ("ACCESS_DENIED", "403", "FORBIDDEN", "This action is not allowed."),
    ("MISSING_AUTHENTICATION_TOKEN", "404", "NOT_FOUND", "No such resource."),
    ("THROTTLED", "429", "RATE_LIMITED", "Too many requests; please try again shortly."),
    ("REQUEST_TOO_LARGE", "413", "BODY_TOO_LARGE", "The request is too large."),
    # Any other answer the gateway gives itself keeps its status but takes the contract's body.
    ("DEFAULT_4XX", None, "REQUEST_REFUSED", "This request was not accepted."),
    ("DEFAULT_5XX", None, "INTERNAL_ERROR", "Something went wrong on our side; nothing was changed."),
)


def camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.replace("-", "_").split("_"))


def _key_schema(entries: list[dict[str, str]]) -> list[dict[str, str]]:
    ordered = sorted(entries, key=lambda e: e["KeyType"] != "HASH")  # HASH must come first
    return [{"AttributeName": e["AttributeName"], "KeyType": e["KeyType"]} for e in ordered]


def table_resource(model: Any, stage_prefix: str) -> dict[str, Any]:
    from infra.bootstrap import ttl_attribute
    schema = model._get_schema()
    props: dict[str, Any] = {
        "TableName": model.Meta.table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": a["AttributeName"], "AttributeType": a["AttributeType"]}
                                 for a in schema["attribute_definitions"]],
        "KeySchema": _key_schema(schema["key_schema"]),
        "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        "SSESpecification": {"SSEEnabled": True, "SSEType": "KMS", "KMSMasterKeyId": {"Ref": "DataKey"}},
        "DeletionProtectionEnabled": True,
    }
    if schema["global_secondary_indexes"]:
        props["GlobalSecondaryIndexes"] = [
            {"IndexName": gsi["index_name"], "KeySchema": _key_schema(gsi["key_schema"]),
             "Projection": {k: v for k, v in gsi["projection"].items()}}
            for gsi in schema["global_secondary_indexes"]]
    ttl = ttl_attribute(model)
    if ttl:
        props["TimeToLiveSpecification"] = {"AttributeName": ttl, "Enabled": True}
    return {"Type": "AWS::DynamoDB::Table", "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain", "Properties": props}


def _key(description: str) -> dict[str, Any]:
    return {"Type": "AWS::KMS::Key", "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain",
            "Properties": {
                "Description": description, "EnableKeyRotation": True,
                "KeyPolicy": {"Version": "2012-10-17", "Statement": [{
                    "Sid": "AccountAdministers", "Effect": "Allow",
                    "Principal": {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}},
                    "Action": "kms:*", "Resource": "*"}]}}}


def model_drift_alarm(stage: str, prefix: str) -> dict[str, Any]:
    """The credit model's weekly drift check (chalicelib.risk.monitor) emits ModelDriftPSI, the
    largest PSI of the week (score or any input); above 0.25 the population has shifted."""
    from chalicelib.risk.drift import ALARM
    from infra.stage import stage_env
    env = stage_env(stage)
    return {"Type": "AWS::CloudWatch::Alarm", "Properties": {
        "AlarmName": f"{prefix}-model-drift",
        "AlarmDescription": "Credit model: a weekly PSI (score or input) above 0.25 against the "
                            "training baseline; see GET /v1/ops/model and models/MODEL_CARD.md",
        "Namespace": env["POWERTOOLS_METRICS_NAMESPACE"], "MetricName": "ModelDriftPSI",
        "Dimensions": [{"Name": "service", "Value": env["POWERTOOLS_SERVICE_NAME"]}],
        "Statistic": "Maximum", "Period": 86400, "EvaluationPeriods": 1, "Threshold": ALARM,
        "ComparisonOperator": "GreaterThanThreshold", "TreatMissingData": "notBreaching"}}


def build(stage: str) -> dict[str, Any]:
    apply_stage_env(stage)
    import app as app_module
    from chalice.app import SQSEventConfig

    from chalicelib.core import config
    from chalicelib.core.db import TABLES
    from chalicelib.core.resources import QUEUES, SECRETS

    prefix = config.resource_prefix()
    resources: dict[str, Any] = {
        "DataKey": _key(f"{prefix}: tables at rest"),
        "PiiKey": _key(f"{prefix}: personal data (envelope encryption of ID and card numbers)"),
        "PiiKeyAlias": {"Type": "AWS::KMS::Alias",
                        "Properties": {"AliasName": config.pii_key_alias(), "TargetKeyId": {"Ref": "PiiKey"}}},
    }
    for model in TABLES:
        resources[camel(model.Meta.table_name.removeprefix(prefix + "-")) + "Table"] = \
            table_resource(model, prefix)
    queue_logical = {}
    for spec in QUEUES:
        logical = camel(spec.key) + "Queue"
        queue_logical[config.queue_name(spec.key)] = logical
        resources[logical + "DeadLetter"] = {
            "Type": "AWS::SQS::Queue",
            "Properties": {"QueueName": config.queue_name(spec.key) + "-dlq",
                           "MessageRetentionPeriod": DLQ_RETENTION_SECONDS, "SqsManagedSseEnabled": True}}
        resources[logical] = {
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "QueueName": config.queue_name(spec.key),
                "VisibilityTimeout": visibility_timeout(stage, spec.consumer),
                "SqsManagedSseEnabled": True,
                "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": [logical + "DeadLetter", "Arn"]},
                                  "maxReceiveCount": spec.max_receive_count}}}
    for spec in SECRETS:
        secret: dict[str, Any] = {"Name": config.secret_name(spec.key), "Description": spec.description}
        if spec.generated:
            secret["GenerateSecretString"] = {"SecretStringTemplate": "{}", "GenerateStringKey": "key",
                                              "PasswordLength": 64, "ExcludePunctuation": True}
        else:
            secret["SecretString"] = "{}"  # an operator sets the real value after the first deploy
        resources[camel(spec.key) + "Secret"] = {"Type": "AWS::SecretsManager::Secret",
                                                 "Properties": secret}
    # Partial batch responses, which chalice cannot set itself (aws/chalice#2029), and a
    # DependsOn so the event source mapping is created after its queue (chalice refers to the
    # queue by a built ARN, not a reference).
    for source in app_module.app.event_sources:
        if isinstance(source, SQSEventConfig):
            function = camel(source.name)
            resources[function] = {
                "DependsOn": [queue_logical[source.queue]],
                "Properties": {"Events": {f"{function}SqsEventSource": {
                    "Properties": {"FunctionResponseTypes": ["ReportBatchItemFailures"]}}}}}
    resources["ModelDriftAlarm"] = model_drift_alarm(stage, prefix)
    # API Gateway's own refusals (authorizer, IAM, unknown route) in the contract's error body.
    for kind, status, code, message in GATEWAY_RESPONSES:
        resources[f"{camel(kind.lower())}GatewayResponse"] = {
            "Type": "AWS::ApiGateway::GatewayResponse",
            "Properties": {"RestApiId": {"Ref": "RestAPI"}, "ResponseType": kind,
                           **({"StatusCode": status} if status else {}),
                           "ResponseTemplates": {"application/json": json.dumps(
                               {"error": {"code": code, "message": message}})}}}
    return {"Resources": resources}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.template")
    parser.add_argument("--stage", default="prod")
    args = parser.parse_args(argv)
    json.dump(build(args.stage), sys.stdout, indent=2, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
