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

from infra import alarms, hardening, web
from infra.stage import apply_stage_env, lambda_functions, lambda_name, logical_id, visibility_timeout

DLQ_RETENTION_SECONDS = 14 * 24 * 3600
LOG_RETENTION_DAYS = 365
# API Gateway's own answers (no function runs), in the contract's error body. The gateway cannot
# read Accept-Language here (gateway response templates are not VTL), so each message is given
# in Chinese, then English. The local server answers an unknown path with the same body.
GATEWAY_RESPONSES = (
    ("UNAUTHORIZED", "401", "UNAUTHORIZED", "请重新登录。Sign in again."),
    ("ACCESS_DENIED", "403", "FORBIDDEN", "不允许这个操作。This action is not allowed."),
    ("MISSING_AUTHENTICATION_TOKEN", "404", "NOT_FOUND", "没有这个接口。No such resource."),
    ("THROTTLED", "429", "RATE_LIMITED", "请求过于频繁，请稍后再试。Too many requests; please try again shortly."),
    ("REQUEST_TOO_LARGE", "413", "BODY_TOO_LARGE", "请求过大。The request is too large."),
    # Any other answer the gateway gives itself keeps its status but takes the contract's body.
    ("DEFAULT_4XX", None, "REQUEST_REFUSED", "这个请求未被接受。This request was not accepted."),
    ("DEFAULT_5XX", None, "INTERNAL_ERROR", "系统出了点问题，没有做任何更改。Something went wrong on our side; nothing was changed."),
)
# Headers on those answers: a browser page (CORS) may read them as it reads the function's.
GATEWAY_RESPONSE_HEADERS = {"Access-Control-Allow-Origin": "*"}


def gateway_body(code: str, message: str) -> str:
    return json.dumps({"error": {"code": code, "message": message}})


def api_paths() -> dict[str, Any]:
    """What the merge template adds to each path of chalice's API definition (swagger):
    - an ANY method proxied to the API function, so a method the path does not declare is
      answered by the function (405 METHOD_NOT_ALLOWED with `Allow`, the contract's body, the
      client's language) rather than by the gateway's 403 "Missing Authentication Token";
    - `Allow` on the CORS preflight that chalice generates (a mock integration).
    The local server (infra/gateway.py) answers both the same way."""
    from chalicelib.api.http import ROUTES, allowed_methods, cors_enabled

    integration = {"type": "aws_proxy", "httpMethod": "POST", "passthroughBehavior": "when_no_match",
                   "contentHandling": "CONVERT_TO_TEXT", "responses": {"default": {"statusCode": "200"}},
                   "uri": {"Fn::Sub": "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path"
                                      "/2015-03-31/functions/${APIHandler.Arn}/invocations"}}
    paths: dict[str, Any] = {}
    for path in sorted({doc.path for doc in ROUTES}):
        entry: dict[str, Any] = {"x-amazon-apigateway-any-method": {
            "produces": ["application/json"],
            "responses": {"405": {"description": "Method not allowed (Allow lists the methods)"}},
            "x-amazon-apigateway-integration": integration}}
        if cors_enabled(path):
            allow = ",".join(allowed_methods(path))
            entry["options"] = {
                "responses": {"200": {"headers": {"Allow": {"type": "string"}}}},
                "x-amazon-apigateway-integration": {"responses": {"default": {
                    "responseParameters": {"method.response.header.Allow": f"'{allow}'"}}}}}
        paths[path] = entry
    return paths


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


def _key(description: str, *also: dict[str, Any]) -> dict[str, Any]:
    return {"Type": "AWS::KMS::Key", "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain",
            "Properties": {
                "Description": description, "EnableKeyRotation": True,
                "KeyPolicy": {"Version": "2012-10-17", "Statement": [{
                    "Sid": "AccountAdministers", "Effect": "Allow",
                    "Principal": {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}},
                    "Action": "kms:*", "Resource": "*"}, *also]}}}


def _logs_may_use(prefix: str) -> dict[str, Any]:
    """CloudWatch Logs encrypts a log group with the key itself, as its service principal,
    for the groups the encryption context names (CloudWatch Logs User Guide, "Encrypt log
    data in CloudWatch Logs using AWS KMS"): the functions' roles need no KMS permission."""
    return {"Sid": "CloudWatchLogsForTheFunctions", "Effect": "Allow",
            "Principal": {"Service": {"Fn::Sub": "logs.${AWS::Region}.amazonaws.com"}},
            "Action": ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
            "Resource": "*",
            "Condition": {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": {"Fn::Sub": (
                "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:/aws/lambda/"
                + prefix + "-*")}}}}


ANCHOR_BUCKET_USERS = ("api_handler", "close_of_business")  # chalicelib.ledger: write, check


def anchor_bucket_name(prefix: str) -> dict[str, str]:
    """Bucket names are global: the account id keeps two deployments of one prefix apart."""
    return {"Fn::Sub": f"{prefix}-ledger-anchors-${{AWS::AccountId}}"}


def anchor_bucket(stage: str, prefix: str) -> dict[str, Any]:
    """The ledger anchors' bucket (chalicelib.ledger.anchors): Object Lock in compliance mode,
    so no one, the account's administrators included, can overwrite or delete a day's anchor
    before its retention (`ANCHOR_RETENTION_DAYS` of the stage) ends; versioned (Object Lock
    needs it), private, TLS only. The functions that use it learn its name from ANCHOR_BUCKET."""
    from infra.stage import stage_env
    name = anchor_bucket_name(prefix)
    out: dict[str, Any] = {
        "LedgerAnchorBucket": {
            "Type": "AWS::S3::Bucket", "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain",
            "Metadata": hardening._skip(hardening.ANCHOR_ACCESS_LOG),
            "Properties": {"BucketName": name, "ObjectLockEnabled": True, **hardening.private_bucket(
                ObjectLockConfiguration={"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {
                    "Mode": "COMPLIANCE", "Days": int(stage_env(stage)["ANCHOR_RETENTION_DAYS"])}}})}},
        "LedgerAnchorBucketPolicy": {"Type": "AWS::S3::BucketPolicy", "Properties": {
            "Bucket": {"Ref": "LedgerAnchorBucket"},
            "PolicyDocument": {"Version": "2012-10-17", "Statement": [hardening.tls_only("LedgerAnchorBucket")]}}},
    }
    for function in ANCHOR_BUCKET_USERS:
        out[logical_id(function)] = {"Properties": {"Environment": {"Variables": {"ANCHOR_BUCKET": name}}}}
    return out


def build(stage: str) -> dict[str, Any]:
    apply_stage_env(stage)
    import app as app_module
    from chalice.app import SQSEventConfig

    from chalicelib.core import config
    from chalicelib.adapters.db import TABLES
    from chalicelib.core.resources import QUEUES, SECRETS

    prefix = config.resource_prefix()
    resources: dict[str, Any] = {
        "DataKey": _key(f"{prefix}: tables at rest"),
        "PiiKey": _key(f"{prefix}: personal data (envelope encryption of ID and card numbers)"),
        "FunctionLogKey": _key(f"{prefix}: the functions' log groups", _logs_may_use(prefix)),
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
                           "MessageRetentionPeriod": DLQ_RETENTION_SECONDS,
                           "KmsMasterKeyId": {"Ref": "QueueKey"}}}
        resources[logical] = {
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "QueueName": config.queue_name(spec.key),
                "VisibilityTimeout": visibility_timeout(stage, spec.consumer),
                "KmsMasterKeyId": {"Ref": "QueueKey"},  # infra/hardening.py
                "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": [logical + "DeadLetter", "Arn"]},
                                  "maxReceiveCount": spec.max_receive_count}}}
    for spec in SECRETS:
        secret: dict[str, Any] = {"Name": config.secret_name(spec.key), "Description": spec.description,
                                  "KmsKeyId": {"Ref": "SecretKey"}}  # infra/hardening.py
        if spec.generated:
            secret["GenerateSecretString"] = {"SecretStringTemplate": "{}", "GenerateStringKey": "key",
                                              "PasswordLength": 64, "ExcludePunctuation": True}
        else:
            secret["SecretString"] = "{}"  # an operator sets the real value after the first deploy
        resources[camel(spec.key) + "Secret"] = {"Type": "AWS::SecretsManager::Secret",
                                                 "Properties": secret}
    # Partial batch responses, which chalice cannot set itself (aws/chalice#2029), the event
    # source's maximum concurrency (the way to cap an SQS consumer: reserved concurrency would
    # throttle the poller and dead-letter messages), and a DependsOn so the event source
    # mapping is created after its queue (chalice refers to the queue by a built ARN).
    specs = {config.queue_name(spec.key): spec for spec in QUEUES}
    for source in app_module.app.event_sources:
        if isinstance(source, SQSEventConfig):
            function = camel(source.name)
            resources[function] = {
                "DependsOn": [queue_logical[source.queue]],
                "Properties": {"Events": {f"{function}SqsEventSource": {
                    "Properties": {"FunctionResponseTypes": ["ReportBatchItemFailures"],
                                   "ScalingConfig": {
                                       "MaximumConcurrency": specs[source.queue].max_concurrency}}}}}}
    # Every function by an explicit name, and its log group made here before it: the IAM
    # policies scope logging to `/aws/lambda/<name>` without knowing the stack's name, and
    # no function needs logs:CreateLogGroup (infra/policy.py).
    for name in lambda_functions(app_module.app):
        function = logical_id(name)
        group = function + "LogGroup"
        resources[group] = {"Type": "AWS::Logs::LogGroup", "Properties": {
            "LogGroupName": f"/aws/lambda/{lambda_name(prefix, name)}", "RetentionInDays": LOG_RETENTION_DAYS,
            "KmsKeyId": {"Fn::GetAtt": ["FunctionLogKey", "Arn"]}}}
        entry = resources.setdefault(function, {})
        entry.setdefault("Properties", {})["FunctionName"] = lambda_name(prefix, name)
        entry["DependsOn"] = [*entry.get("DependsOn", []), group]
    hardening.merge(resources, anchor_bucket(stage, prefix))
    # API Gateway's own refusals (authorizer, IAM, unknown route) in the contract's error body.
    for kind, status, code, message in GATEWAY_RESPONSES:
        resources[f"{camel(kind.lower())}GatewayResponse"] = {
            "Type": "AWS::ApiGateway::GatewayResponse",
            "Properties": {"RestApiId": {"Ref": "RestAPI"}, "ResponseType": kind,
                           **({"StatusCode": status} if status else {}),
                           "ResponseParameters": {f"gatewayresponse.header.{name}": f"'{value}'"
                                                  for name, value in GATEWAY_RESPONSE_HEADERS.items()},
                           "ResponseTemplates": {"application/json": gateway_body(code, message)}}}
    # Merged into chalice's own API definition (a deep merge: only these keys are added).
    resources["RestAPI"] = {"Properties": {"DefinitionBody": {"paths": api_paths()}}}
    # Keys for queues, secrets and logs, the jobs' DLQ, API logging and tracing, and the
    # reasons for what a security scan flags and we do not change.
    hardening.merge(resources, hardening.resources(stage, app_module.app, prefix))
    # The alarms (every dead-letter queue, the jobs' failures, model drift) and their topic.
    hardening.merge(resources, alarms.resources(stage, prefix, resources))
    # The mobile web page: its bucket, and CloudFront in front of it and of the API (issue 18).
    hardening.merge(resources, web.resources(stage, prefix))
    return {"Resources": resources, "Outputs": web.outputs()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.template")
    parser.add_argument("--stage", default="prod")
    args = parser.parse_args(argv)
    json.dump(build(args.stage), sys.stdout, indent=2, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
