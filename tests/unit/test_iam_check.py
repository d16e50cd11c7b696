"""The IAM coverage check itself: what AWS authorizes for a call, and how a policy is read."""
from __future__ import annotations

import pytest

from infra import iam_check
from infra.iam_check import Deployment, Function

KEY = {"Fn::GetAtt": ["DataKey", "Arn"]}
VIA_DYNAMODB = {"StringEquals": {"kms:ViaService": {"Fn::Sub": "dynamodb.${AWS::Region}.amazonaws.com"}}}
RESOURCES = {
    "DataKey": {"Type": "AWS::KMS::Key", "Properties": {}},
    "PiiKey": {"Type": "AWS::KMS::Key", "Properties": {}},
    "PiiAlias": {"Type": "AWS::KMS::Alias", "Properties": {"AliasName": "alias/p-pii", "TargetKeyId": {"Ref": "PiiKey"}}},
    "UsersTable": {"Type": "AWS::DynamoDB::Table", "Properties": {
        "TableName": "p-users", "SSESpecification": {"SSEType": "KMS", "KMSMasterKeyId": {"Ref": "DataKey"}}}},
    "PlainTable": {"Type": "AWS::DynamoDB::Table", "Properties": {"TableName": "p-plain"}},
    "JwtSecret": {"Type": "AWS::SecretsManager::Secret", "Properties": {"Name": "p/jwt"}},
    "JwksSecret": {"Type": "AWS::SecretsManager::Secret", "Properties": {"Name": "p/jwks", "KmsKeyId": {"Ref": "DataKey"}}},
    "OpsSecret": {"Type": "AWS::SecretsManager::Secret", "Properties": {"Name": "p/ops"}},
    "FnLogGroup": {"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": "/aws/lambda/p-fn"}},
}


def arn(service, rest):
    return {"Fn::Sub": f"arn:${{AWS::Partition}}:{service}:${{AWS::Region}}:${{AWS::AccountId}}:{rest}"}


LOGS = {"Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "Resource": arn("logs", "log-group:/aws/lambda/p-fn:*")}


def deployment(*statements, function_name="p-fn", tracing=False, queues=()):
    policy = {"Version": "2012-10-17", "Statement": [LOGS, *statements]}
    return Deployment("prod", "p", RESOURCES, {"fn": Function("fn", policy, function_name, tracing, list(queues))}, "test")


def recording(*calls):
    return {"stage": "local", "resource_prefix": "l", "invocations": {"fn": 1},
            "calls": [{"function": "fn", "service": s, "operation": o, "target": t, "count": 1} for s, o, t in calls]}


def allow(action, resource, condition=None):
    return {"Effect": "Allow", "Action": action, "Resource": resource, **({"Condition": condition} if condition else {})}


GET_USER = ("dynamodb", "GetItem", {"TableName": "l-users"})


def test_an_item_call_on_a_table_under_a_cmk_needs_decrypt_on_its_key_through_dynamodb():
    table_only = iam_check.check(recording(GET_USER), deployment(allow("dynamodb:GetItem", arn("dynamodb", "table/p-users"))))
    assert table_only.denied == [
        "fn: kms:Decrypt on arn:aws:kms:us-east-1:123456789012:key/DataKey "
        "[kms:ViaService=dynamodb.us-east-1.amazonaws.com] (dynamodb.GetItem on a table under a CMK) "
        "is not allowed by its policy"]
    with_key = deployment(allow("dynamodb:GetItem", arn("dynamodb", "table/p-users")),
                          allow("kms:Decrypt", KEY, VIA_DYNAMODB))
    assert iam_check.check(recording(GET_USER), with_key).ok
    other_service = deployment(allow("dynamodb:GetItem", arn("dynamodb", "table/p-users")),
                               allow("kms:Decrypt", KEY, {"StringEquals": {"kms:ViaService": "sqs.us-east-1.amazonaws.com"}}))
    assert len(iam_check.check(recording(GET_USER), other_service).denied) == 1
    # A table on an AWS owned key needs no KMS permission at all.
    plain = iam_check.check(recording(("dynamodb", "GetItem", {"TableName": "l-plain"})),
                            deployment(allow("dynamodb:GetItem", arn("dynamodb", "table/p-plain"))))
    assert plain.ok


def test_a_transaction_is_authorized_item_by_item_and_a_query_on_an_index_by_the_index():
    calls = recording(("dynamodb", "TransactWriteItems", {"items": [["Put", "l-plain"], ["Update", "l-plain"]]}),
                      ("dynamodb", "Query", {"TableName": "l-plain", "IndexName": "by_user"}))
    result = iam_check.check(calls, deployment(allow(["dynamodb:PutItem", "dynamodb:Query"], arn("dynamodb", "table/p-plain"))))
    assert [line.split(" (")[0] for line in result.denied] == [
        "fn: dynamodb:Query on arn:aws:dynamodb:us-east-1:123456789012:table/p-plain/index/by_user",
        "fn: dynamodb:UpdateItem on arn:aws:dynamodb:us-east-1:123456789012:table/p-plain"]


def test_a_grant_never_needed_is_reported_and_a_function_that_never_ran_too():
    policy = deployment(allow(["dynamodb:GetItem", "dynamodb:DeleteItem"], arn("dynamodb", "table/p-plain")))
    result = iam_check.check(recording(("dynamodb", "GetItem", {"TableName": "l-plain"})), policy)
    assert not result.denied
    assert result.unused == ["fn: dynamodb:DeleteItem on arn:aws:dynamodb:us-east-1:123456789012:table/p-plain "
                             "(statement #1) is granted and never needed"]
    idle = iam_check.check({**recording(), "invocations": {}}, deployment())
    assert idle.unused[0] == "fn: never ran in the tests, so none of its grants is proven"


def test_secrets_are_matched_by_name_and_the_random_suffix_only():
    jwt_only = deployment(allow("secretsmanager:GetSecretValue", arn("secretsmanager", "secret:p/jwt-??????")))
    assert iam_check.check(recording(("secretsmanager", "GetSecretValue", {"SecretId": "l/jwt"})), jwt_only).ok
    jwks = iam_check.check(recording(("secretsmanager", "GetSecretValue", {"SecretId": "l/jwks"})), jwt_only)
    assert [line.split(" (")[0] for line in jwks.denied] == [
        "fn: kms:Decrypt on arn:aws:kms:us-east-1:123456789012:key/DataKey [kms:ViaService=secretsmanager.us-east-1.amazonaws.com]",
        "fn: secretsmanager:GetSecretValue on arn:aws:secretsmanager:us-east-1:123456789012:secret:p/jwks-Ab12Cd"]
    write = iam_check.requests_for({"service": "secretsmanager", "operation": "PutSecretValue",
                                    "target": {"SecretId": "l/jwks", "ClientRequestToken": True}},
                                   recording(), deployment())
    assert [r.action for r in write] == ["secretsmanager:PutSecretValue", "kms:GenerateDataKey", "kms:Decrypt"]
    # The ops key is the local stage's: another stage never needs it.
    assert iam_check.requests_for({"service": "secretsmanager", "operation": "GetSecretValue",
                                   "target": {"SecretId": "l/ops"}}, recording(), deployment()) == []


def test_a_key_named_by_its_alias_is_checked_as_the_key_the_template_aliases():
    calls = recording(("kms", "GenerateDataKey", {"KeyId": "alias/l-pii"}))
    assert iam_check.check(calls, deployment(allow("kms:GenerateDataKey", {"Fn::GetAtt": ["PiiKey", "Arn"]}))).ok
    assert iam_check.check(calls, deployment(allow("kms:GenerateDataKey", KEY))).denied


def test_logs_need_the_functions_own_log_group_and_a_name_that_does_not_depend_on_the_stack():
    assert iam_check.check(recording(), deployment()).ok
    unnamed = iam_check.check(recording(), deployment(function_name=None))
    assert {line.split(" on ")[0] for line in unnamed.denied} == {
        "fn: logs:CreateLogStream", "fn: logs:PutLogEvents", "fn: logs:CreateLogGroup"}
    # ...and the grants on the group the function would have had are needed by nothing.
    assert [line.split(" on ")[0] for line in unnamed.unused] == ["fn: logs:CreateLogStream", "fn: logs:PutLogEvents"]


def test_tracing_and_an_sqs_event_source_need_what_lambda_does_with_the_role():
    result = iam_check.check(recording(), deployment(tracing=True, queues=["p-jobs"]))
    assert sorted(line.split(" on ")[0] for line in result.denied) == [
        "fn: sqs:DeleteMessage", "fn: sqs:GetQueueAttributes", "fn: sqs:ReceiveMessage",
        "fn: xray:PutTelemetryRecords", "fn: xray:PutTraceSegments"]


def test_an_sms_to_a_phone_number_is_allowed_only_by_a_star_resource():
    calls = recording(("sns", "Publish", {"PhoneNumber": True}))
    assert iam_check.check(calls, deployment(allow("sns:Publish", "*"))).ok
    assert iam_check.check(calls, deployment(allow("sns:Publish", arn("sns", "*")))).denied


def test_a_deny_wins_and_unmodelled_policy_elements_are_refused():
    both = deployment(allow("dynamodb:GetItem", arn("dynamodb", "table/p-plain")),
                      {"Effect": "Deny", "Action": "dynamodb:*", "Resource": "*"})
    assert iam_check.check(recording(("dynamodb", "GetItem", {"TableName": "l-plain"})), both).denied
    with pytest.raises(ValueError, match="NotResource"):
        iam_check.check(recording(), deployment({"Effect": "Allow", "Action": "s3:*", "NotResource": "x"}))
