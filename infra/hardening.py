"""What a security scan of the deployed template asks for, fixed or skipped with the reason.

`make package` runs checkov 3 on `build/<stage>/sam.json` and fails on any failed check; this
module is where each of its findings is answered, so the answers can be read in one place:

Fixed here (and checked by `tests/unit/test_hardening.py`):
- `QueueKey`: every queue and dead-letter queue is encrypted with this customer-managed key
  (SQS-managed SSE is not a customer key). `SecretKey`: every secret. Both rotate yearly and
  have key policies that delegate to IAM, so each function's own IAM policy decides what it
  may do with them (no role is named in a key policy: roles refer to the keys, and a key
  policy naming them would make a dependency cycle).
- Scheduled jobs are invoked asynchronously: a failed invocation (after Lambda's two retries)
  goes to the `<prefix>-jobs-dlq` queue instead of vanishing. Their reserved concurrency (1:
  a job never runs twice at once) is set in `.chalice/config.json`.
- The REST API: X-Ray tracing (stages with `xray`), and a JSON access log (who, what, status,
  latency; never a header or a body, which hold tokens and personal data) in a log group kept
  365 days and encrypted with `LogKey`, whose key policy lets CloudWatch Logs use it for that
  log group only. API Gateway writes logs through the account's CloudWatch role
  (`ApiGatewayAccount`, one setting per account and region, kept when the stack is deleted).

- The web page (infra/web.py): its bucket is private (public access blocked, BucketOwnerEnforced,
  SSE-S3, versioned, TLS only) and read by the distribution alone (OAC, `AWS:SourceArn`); the
  distribution redirects HTTP to HTTPS and speaks only HTTPS (TLS 1.2) to the API.

Skipped, each in the resource's `Metadata.checkov.skip` with the reason: see `SKIPS` and
`WEB_SKIPS`.

Functions get the IAM permissions these resources need from their own policies (issue 13,
items 1-4): a job needs `sqs:SendMessage` on the jobs DLQ and `kms:GenerateDataKey` +
`kms:Decrypt` on `QueueKey` (Lambda sends to a DLQ with the function's role, and checks it
at deploy time); producers and consumers of a queue need the same KMS actions on `QueueKey`;
readers of a secret `kms:Decrypt` on `SecretKey`, its writers `kms:GenerateDataKey` too.
"""
from __future__ import annotations

import json
from typing import Any

ACCESS_LOG_RETENTION_DAYS = 365
JOBS_DLQ = "jobs-dlq"  # `<prefix>-jobs-dlq`: failed asynchronous invocations of scheduled jobs

# Checks answered by a skip, with the reason, per kind of resource. Every other check must pass.
VPC = ("CKV_AWS_117", "No VPC: the functions call only AWS APIs (DynamoDB, SQS, KMS, Secrets "
       "Manager, SNS) and partners' public HTTPS APIs, and hold no connection to a private "
       "resource. A VPC would add NAT gateways (cost, a new single point of failure) and ENI "
       "set-up to cold starts, and protect nothing the IAM policies do not.")
ENVIRONMENT = ("CKV_AWS_173", "The environment holds no secret (stage name, resource prefix, "
               "log level, APR cap, operator role ARNs); Lambda encrypts it at rest with its "
               "AWS-managed key. Secrets live in Secrets Manager under SecretKey, read at run time.")
SYNCHRONOUS_DLQ = ("CKV_AWS_116", "Invoked synchronously by API Gateway: the caller receives the "
                   "error and retries with its Idempotency-Key; a Lambda DLQ only receives "
                   "asynchronous invocations and would never hold anything.")
CONSUMER_DLQ = ("CKV_AWS_116", "Invoked by an SQS event source mapping (synchronously): a failed "
                "message returns to its queue and, after maxReceiveCount receives, goes to that "
                "queue's own dead-letter queue (RedrivePolicy).")
API_CONCURRENCY = ("CKV_AWS_115", "No reserved concurrency for the API: Lambda throttling behind "
                   "API Gateway answers clients 500 instead of 429, and a reservation takes "
                   "capacity from the account's pool. The API is limited by API Gateway's "
                   "throttling, which answers 429 RATE_LIMITED (THROTTLED gateway response), "
                   "and per-user limits in the app.")
CONSUMER_CONCURRENCY = ("CKV_AWS_115", "Capped on the SQS event source instead "
                        "(ScalingConfig.MaximumConcurrency): reserved concurrency throttles the "
                        "SQS poller, and throttled receives send messages to the dead-letter "
                        "queue (reminders and payouts lost).")
API_CACHE = ("CKV_AWS_120", "No API Gateway cache: every answer is per user and must reflect the "
             "latest money state (balances, payoff, schedule); a cached answer would show a "
             "borrower stale or, keyed wrongly, another borrower's data. A cache cluster also "
             "stores responses (personal data) outside the KMS-encrypted tables.")

SMS_TO_A_PHONE = ("CKV_AWS_111", "sns:Publish of an SMS to a phone number (PhoneNumber) has no "
                  "resource ARN: IAM authorizes it against `*` (infra/IAM.md, TextMessages). Every "
                  "other write of this role names its resource.")

ANCHOR_ACCESS_LOG = ("CKV_AWS_18", "The ledger anchor bucket takes one object a day, written once by close "
                     "of business under Object Lock (compliance mode): no object can be changed or "
                     "deleted by anyone, so server access logs (another bucket, its own retention) "
                     "would record reads only; the record's integrity is the lock's, not a log's.")

# The web page's bucket and distribution (infra/web.py).
WEB_BUCKET_ACCESS_LOG = ("CKV_AWS_18", "The web bucket holds the page's code, the same files every "
                         "visitor downloads: a read reveals nothing. Only CloudFront reads it (OAC) and "
                         "only an operator's `make publish-web` writes it, and every replaced file is "
                         "kept 30 days as an earlier version to compare with or roll back to.")
WEB_WAF = ("CKV_AWS_68", "A web ACL on the distribution would not guard the API: its execute-api URL "
           "stays reachable directly (operators call /v1/ops there with SigV4, which CloudFront's "
           "rewritten Host would break), so abuse would go around it. The API is limited where every "
           "path reaches it: API Gateway throttling (429 RATE_LIMITED) and the app's per-phone and "
           "per-user limits. A CloudFront web ACL must also be made in us-east-1.")
WEB_ACCESS_LOG = ("CKV_AWS_86", "API requests are logged where they are served, in the API's access "
                  "log (caller, user, status, latency; 365 days, KMS-encrypted); the rest are the "
                  "page's static files, the same for everyone. CloudFront's standard logs go to an S3 "
                  "bucket with ACLs enabled (which BucketOwnerEnforced refuses) or, v2, through a "
                  "delivery made in us-east-1, and would keep viewers' IPs in one more store.")
WEB_DEFAULT_CERTIFICATE = ("CKV_AWS_174", "No custom domain yet: with CloudFront's own *.cloudfront.net "
                           "certificate CloudFront applies the TLSv1 security policy whatever "
                           "MinimumProtocolVersion says (browsers still negotiate TLS 1.2 or 1.3). With "
                           "a custom domain, set Aliases, an ACM certificate (us-east-1), SslSupportMethod "
                           "sni-only and MinimumProtocolVersion TLSv1.2_2021, and drop this skip.")
WEB_SKIPS: dict[str, tuple[tuple[str, str], ...]] = {
    "bucket": (WEB_BUCKET_ACCESS_LOG,),
    "distribution": (WEB_WAF, WEB_ACCESS_LOG, WEB_DEFAULT_CERTIFICATE),
}

SKIPS: dict[str, tuple[tuple[str, str], ...]] = {
    "api": (VPC, ENVIRONMENT, SYNCHRONOUS_DLQ, API_CONCURRENCY),
    "authorizer": (VPC, ENVIRONMENT, SYNCHRONOUS_DLQ, API_CONCURRENCY),
    "consumer": (VPC, ENVIRONMENT, CONSUMER_DLQ, CONSUMER_CONCURRENCY),
    "job": (VPC, ENVIRONMENT),
    "rest_api": (API_CACHE,),
}

# Access log: enough to answer "who did what, when, with what result" (the operator's IAM
# ARN for /v1/ops, the user id the authorizer found); no header, query string or body.
ACCESS_LOG_FORMAT = {
    "requestId": "$context.requestId", "extendedRequestId": "$context.extendedRequestId",
    "time": "$context.requestTime", "ip": "$context.identity.sourceIp",
    "method": "$context.httpMethod", "resource": "$context.resourcePath",
    "status": "$context.status", "protocol": "$context.protocol",
    "responseLength": "$context.responseLength", "latencyMs": "$context.responseLatency",
    "integrationLatencyMs": "$context.integrationLatency",
    "principal": "$context.authorizer.principalId", "caller": "$context.identity.userArn",
    "error": "$context.error.responseType",
}


def _skip(*checks: tuple[str, str]) -> dict[str, Any]:
    return {"checkov": {"skip": [{"id": check, "comment": why} for check, why in checks]}}


def private_bucket(**properties: Any) -> dict[str, Any]:
    """An S3 bucket's properties every bucket of ours has: versioned, encrypted at rest, no
    public access whatever a policy or ACL says, ACLs off; `properties` adds to them."""
    return {"VersioningConfiguration": {"Status": "Enabled"}, **properties,
            "BucketEncryption": {"ServerSideEncryptionConfiguration": [
                {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
            "PublicAccessBlockConfiguration": {"BlockPublicAcls": True, "BlockPublicPolicy": True,
                                               "IgnorePublicAcls": True, "RestrictPublicBuckets": True},
            "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}}


def tls_only(bucket: str) -> dict[str, Any]:
    """The bucket policy statement refusing any request to bucket `bucket` (a logical id)
    that does not come over TLS."""
    return {"Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
            "Resource": [{"Fn::GetAtt": [bucket, "Arn"]}, {"Fn::Sub": f"${{{bucket}.Arn}}/*"}],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}}


def _key(description: str, extra_statements: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    from infra.template import _key as account_key  # the account administers, IAM delegates
    key = account_key(description)
    key["Properties"]["KeyPolicy"]["Statement"].extend(extra_statements or [])
    return key


def function_kinds(app: Any) -> dict[str, str]:
    """Every function chalice packages, by its logical id: api, authorizer, consumer or job."""
    from chalice.app import ScheduledEventConfig, SQSEventConfig
    from chalice.utils import to_cfn_resource_name

    kinds = {"APIHandler": "api"}
    kinds.update({to_cfn_resource_name(auth.name): "authorizer" for auth in app.builtin_auth_handlers})
    for source in app.event_sources:
        if isinstance(source, SQSEventConfig):
            kinds[to_cfn_resource_name(source.name)] = "consumer"
        elif isinstance(source, ScheduledEventConfig):
            kinds[to_cfn_resource_name(source.name)] = "job"
    return kinds


def access_log_group_name(prefix: str) -> str:
    return f"/aws/apigateway/{prefix}-access"


def resources(stage: str, app: Any, prefix: str) -> dict[str, Any]:
    """The keys, the jobs' DLQ, the API's log group and role, and the patches to chalice's
    functions and API, to merge into the template's Resources."""
    from infra.stage import chalice_config, operator_role_arns
    from infra.template import DLQ_RETENTION_SECONDS

    log_group = access_log_group_name(prefix)
    out: dict[str, Any] = {
        "QueueKey": _key(f"{prefix}: SQS queues and dead-letter queues"),
        "QueueKeyAlias": {"Type": "AWS::KMS::Alias", "Properties": {
            "AliasName": f"alias/{prefix}-queues", "TargetKeyId": {"Ref": "QueueKey"}}},
        "SecretKey": _key(f"{prefix}: Secrets Manager secrets"),
        "SecretKeyAlias": {"Type": "AWS::KMS::Alias", "Properties": {
            "AliasName": f"alias/{prefix}-secrets", "TargetKeyId": {"Ref": "SecretKey"}}},
        "LogKey": _key(f"{prefix}: API access logs", [{
            "Sid": "CloudWatchLogsForTheAccessLogOnly", "Effect": "Allow",
            "Principal": {"Service": {"Fn::Sub": "logs.${AWS::Region}.${AWS::URLSuffix}"}},
            "Action": ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*",
                       "kms:Describe*"],
            "Resource": "*",
            "Condition": {"ArnEquals": {"kms:EncryptionContext:aws:logs:arn": {"Fn::Sub":
                f"arn:${{AWS::Partition}}:logs:${{AWS::Region}}:${{AWS::AccountId}}:log-group:{log_group}"}}}}]),
        "LogKeyAlias": {"Type": "AWS::KMS::Alias", "Properties": {
            "AliasName": f"alias/{prefix}-logs", "TargetKeyId": {"Ref": "LogKey"}}},
        "JobsDeadLetterQueue": {"Type": "AWS::SQS::Queue", "Properties": {
            "QueueName": f"{prefix}-{JOBS_DLQ}", "MessageRetentionPeriod": DLQ_RETENTION_SECONDS,
            "KmsMasterKeyId": {"Ref": "QueueKey"}}},
        "ApiAccessLogs": {"Type": "AWS::Logs::LogGroup", "DeletionPolicy": "Retain",
                          "UpdateReplacePolicy": "Retain", "Properties": {
                              "LogGroupName": log_group, "RetentionInDays": ACCESS_LOG_RETENTION_DAYS,
                              "KmsKeyId": {"Fn::GetAtt": ["LogKey", "Arn"]}}},
        # API Gateway writes every API's logs in an account and region through one role; kept
        # when the stack is deleted, so another stage's logging keeps working.
        "ApiGatewayLogsRole": {"Type": "AWS::IAM::Role", "DeletionPolicy": "Retain",
                               "UpdateReplacePolicy": "Retain", "Properties": {
                                   "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
                                       "Effect": "Allow", "Principal": {"Service": "apigateway.amazonaws.com"},
                                       "Action": "sts:AssumeRole"}]},
                                   "ManagedPolicyArns": [{"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/"
                                                          "service-role/AmazonAPIGatewayPushToCloudWatchLogs"}]}},
        "ApiGatewayAccount": {"Type": "AWS::ApiGateway::Account", "DeletionPolicy": "Retain",
                              "UpdateReplacePolicy": "Retain", "Properties": {
                                  "CloudWatchRoleArn": {"Fn::GetAtt": ["ApiGatewayLogsRole", "Arn"]}}},
        "RestAPI": {
            "DependsOn": ["ApiGatewayAccount"],  # access logging needs the account's role first
            "Metadata": _skip(*SKIPS["rest_api"]),
            "Properties": {
                "TracingEnabled": bool(chalice_config()["stages"][stage].get("xray", False)),
                "AccessLogSetting": {"DestinationArn": {"Fn::GetAtt": ["ApiAccessLogs", "Arn"]},
                                     "Format": json.dumps(ACCESS_LOG_FORMAT, separators=(",", ":"))}}},
    }
    if stage != "local":  # the local stage guards /v1/ops with X-Ops-Key, not IAM
        roles = operator_role_arns(stage)
        merge(out["RestAPI"], {"Properties": {"DefinitionBody": {
            "x-amazon-apigateway-policy": api_resource_policy(roles)}}})
        out["APIHandler"] = {"Properties": {"Environment": {"Variables": {
            "OPERATOR_ROLE_ARNS": {"Fn::Sub": ",".join(roles)}}}}}
    from chalice.utils import to_cfn_resource_name

    from infra.policy import NEEDS
    for function, needs in NEEDS.items():
        if needs.text_messages:  # the role chalice makes for the function (`ApiHandlerRole`)
            merge(out.setdefault(to_cfn_resource_name(function) + "Role", {}),
                  {"Metadata": _skip(SMS_TO_A_PHONE)})
    for logical, kind in function_kinds(app).items():
        patch: dict[str, Any] = {"Metadata": _skip(*SKIPS[kind])}
        if kind == "job":
            patch["Properties"] = {"DeadLetterQueue": {
                "Type": "SQS", "TargetArn": {"Fn::GetAtt": ["JobsDeadLetterQueue", "Arn"]}}}
        merge(out.setdefault(logical, {}), patch)
    return out


def api_resource_policy(operator_roles: list[str]) -> dict[str, Any]:
    """The REST API's resource policy: anyone may call it (the routes authenticate), but
    /v1/ops only a session of the stage's operator roles. API Gateway checks it before the IAM
    authorizer lets a signed request through, so another principal of the account (or of any
    account: an `Allow *` would otherwise let their signed requests in) never reaches the
    function; the function checks the role again (`authenticate_operator`). `aws:PrincipalArn`
    of a role session is the role's ARN, path included."""
    api = "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:*"
    deny: dict[str, Any] = {"Sid": "OpsOnlyForOperatorRoles", "Effect": "Deny", "Principal": "*",
                            "Action": "execute-api:Invoke", "Resource": {"Fn::Sub": api + "/*/*/v1/ops/*"}}
    if operator_roles:  # none configured: nobody reaches /v1/ops
        deny["Condition"] = {"ArnNotEquals": {"aws:PrincipalArn": [{"Fn::Sub": arn} for arn in operator_roles]}}
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "AnyoneCallsTheApiItsRoutesAuthenticate", "Effect": "Allow", "Principal": "*",
         "Action": "execute-api:Invoke", "Resource": {"Fn::Sub": api + "/*"}},
        deny]}


def merge(into: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge `patch` into `into` (dicts merged, anything else replaced), as chalice's
    merge template does; returns `into`."""
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value)
        else:
            into[key] = value
    return into
