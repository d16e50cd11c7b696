"""Do the functions' IAM policies allow every AWS call they make, and nothing more?

    python -m infra.iam_check                                  # build/iam-calls.json vs the generated policies (prod)
    python -m infra.iam_check --template build/prod/sam.json   # ... vs the packaged template

The calls come from a test run (`infra.iam_recorder`, saved by tests/conftest.py as
build/iam-calls.json). Each recorded call becomes the IAM requests AWS authorizes for it:
its own action on its resource ARN (a transaction item by item, a batch table by table, a
query on an index against the index's ARN), plus the calls AWS services make with the
function's credentials on its behalf, which moto never makes:

- DynamoDB on a table encrypted with a customer managed key decrypts the table key with the
  caller's credentials: `kms:Decrypt` on that key, via DynamoDB, for reads and writes alike.
- Secrets Manager on a secret under a customer managed key: `kms:Decrypt` to read it,
  `kms:GenerateDataKey` to write a value (and `kms:Decrypt` when the write names a version
  id, which Secrets Manager compares with an existing version).
- SQS on a queue under a customer managed key: `kms:GenerateDataKey` and `kms:Decrypt` to
  send, `kms:Decrypt` to receive.
- Lambda itself, for each function that ran: the SQS event source polls its queue with the
  function's role (`ReceiveMessage`, `DeleteMessage`, `GetQueueAttributes`), the runtime
  writes the function's log group (`CreateLogStream`, `PutLogEvents`, and `CreateLogGroup`
  when the template does not create the group), and active tracing sends X-Ray segments.

Those requests are evaluated against the function's own policy document (statements, action
and resource wildcards, the condition operators the policies use); a request no Allow
statement matches is a failure, and so is any (action, resource) a function is granted and
never needed in the run. Names are translated from the recording's stage (`local`) to the
checked stage by the resource prefix; calls only the local stage makes (its ops key, its clock) are
left out of other stages.
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from infra.stage import ROOT, chalice_config, function_setting, stage_env

CALLS = ROOT / "build" / "iam-calls.json"
REPORT = ROOT / "build" / "iam-report.json"
PARTITION, REGION, ACCOUNT = "aws", "us-east-1", "123456789012"
SECRET_SUFFIX = "Ab12Cd"  # Secrets Manager appends 6 random characters to a secret's ARN
EXAMPLE_LOG_STREAM = "2027/01/10/[$LATEST]0123456789abcdef0123456789abcdef"

# DynamoDB operations that read or write items: each needs the table key when it is a CMK.
DYNAMODB_DATA = {"GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "BatchGetItem",
                 "BatchWriteItem", "TransactWriteItems", "TransactGetItems", "ConditionCheckItem",
                 "ExecuteStatement", "BatchExecuteStatement", "ExecuteTransaction"}
# A transaction is authorized item by item, each by the action of its kind (DynamoDB
# developer guide, "Using IAM with DynamoDB transactions").
TRANSACTION_ITEM_ACTION = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                           "ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}
# SQS batch operations are authorized by the single-message action.
SQS_ACTION = {"SendMessageBatch": "SendMessage", "DeleteMessageBatch": "DeleteMessage",
              "ChangeMessageVisibilityBatch": "ChangeMessageVisibility"}
# The local stack's own table (its clock and held messages), which only `local` has.
LOCAL_ONLY_TABLE = "stack"
# What Lambda's SQS event source mapping does with the function's role.
EVENT_SOURCE_SQS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")


@dataclass(frozen=True)
class Request:
    """One IAM authorization AWS makes: action, resource ARN, request context."""
    action: str
    resource: str
    context: tuple[tuple[str, str], ...] = ()
    why: str = ""

    def key(self) -> tuple[str, str, tuple]:
        return (self.action, self.resource, self.context)


@dataclass
class Function:
    name: str  # chalice's name: api_handler, notification_consumer, ...
    policy: dict[str, Any]
    function_name: str | None  # the FunctionName property (None: CloudFormation makes one up)
    tracing: bool
    queues: list[str] = field(default_factory=list)  # SQS event sources (queue names)
    dead_letter: str | None = None  # the queue Lambda sends failed asynchronous invocations to


@dataclass
class Deployment:
    stage: str
    prefix: str
    resources: dict[str, Any]
    functions: dict[str, Function]
    source: str


# ------------------------------------------------------------------ CloudFormation values

def arn_of(logical: str, resources: dict[str, Any]) -> str:
    """What `Fn::GetAtt [logical, Arn]` (or `${logical.Arn}`) resolves to."""
    res = resources.get(logical)
    if res is None:
        raise KeyError(f"no resource {logical} in the template")
    kind, props = res["Type"], res.get("Properties", {})
    if kind == "AWS::KMS::Key":
        return f"arn:{PARTITION}:kms:{REGION}:{ACCOUNT}:key/{logical}"  # the key id stands for itself
    if kind == "AWS::DynamoDB::Table":
        return f"arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT}:table/{props['TableName']}"
    if kind == "AWS::SQS::Queue":
        return f"arn:{PARTITION}:sqs:{REGION}:{ACCOUNT}:{props['QueueName']}"
    if kind == "AWS::SecretsManager::Secret":
        return f"arn:{PARTITION}:secretsmanager:{REGION}:{ACCOUNT}:secret:{props['Name']}-{SECRET_SUFFIX}"
    if kind == "AWS::S3::Bucket":
        return f"arn:{PARTITION}:s3:::{resolve(props['BucketName'], resources)}"
    if kind == "AWS::Logs::LogGroup":
        return f"arn:{PARTITION}:logs:{REGION}:{ACCOUNT}:log-group:{props['LogGroupName']}:*"
    raise KeyError(f"no ARN for {kind} {logical}")


def ref_of(logical: str, resources: dict[str, Any]) -> str:
    kind = resources[logical]["Type"]
    if kind == "AWS::KMS::Key":
        return logical
    return arn_of(logical, resources)  # secrets: Ref is the ARN


def resolve(value: Any, resources: dict[str, Any]) -> Any:
    """Resolve the intrinsic functions policies use (Fn::Sub, Fn::GetAtt ... Arn, Ref)."""
    pseudo = {"AWS::Partition": PARTITION, "AWS::Region": REGION, "AWS::AccountId": ACCOUNT,
              "AWS::URLSuffix": "amazonaws.com"}
    if isinstance(value, list):
        return [resolve(v, resources) for v in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Fn::Sub"}:
        text = value["Fn::Sub"]
        if not isinstance(text, str):
            raise ValueError(f"Fn::Sub with a variable map is not supported: {value}")

        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in pseudo:
                return pseudo[name]
            if name.endswith(".Arn"):
                return arn_of(name[:-4], resources)
            return ref_of(name, resources)
        return re.sub(r"\$\{([^}!]+)\}", sub, text)
    if set(value) == {"Fn::GetAtt"}:
        logical, attribute = value["Fn::GetAtt"]
        if attribute != "Arn":
            raise ValueError(f"unsupported attribute {attribute}")
        return arn_of(logical, resources)
    if set(value) == {"Ref"}:
        return pseudo.get(value["Ref"]) or ref_of(value["Ref"], resources)
    return {k: resolve(v, resources) for k, v in value.items()}


def key_arn(reference: Any, resources: dict[str, Any]) -> str | None:
    """The ARN of the customer managed key a `KMSMasterKeyId`/`KmsKeyId`/`KmsMasterKeyId`
    names, or None for no key or an AWS managed one (`alias/aws/...`), which needs no IAM
    permission of the caller: its key policy allows the service on the account's behalf."""
    if reference is None:
        return None
    if isinstance(reference, str):
        if reference.startswith("alias/aws/"):
            return None
        return alias_target(reference, resources) if reference.startswith("alias/") else reference
    if isinstance(reference, dict) and set(reference) <= {"Ref", "Fn::GetAtt"}:
        logical = reference["Ref"] if "Ref" in reference else reference["Fn::GetAtt"][0]
        if resources.get(logical, {}).get("Type") == "AWS::KMS::Key":
            return arn_of(logical, resources)
        if resources.get(logical, {}).get("Type") == "AWS::KMS::Alias":
            return key_arn(resources[logical]["Properties"]["TargetKeyId"], resources)
    return str(resolve(reference, resources))


def alias_target(alias: str, resources: dict[str, Any]) -> str:
    for res in resources.values():
        if res.get("Type") == "AWS::KMS::Alias" and res["Properties"].get("AliasName") == alias:
            found = key_arn(res["Properties"]["TargetKeyId"], resources)
            if found:
                return found
    return f"arn:{PARTITION}:kms:{REGION}:{ACCOUNT}:{alias}"  # an alias no template key has


def _by_property(resources: dict[str, Any], kind: str, prop: str) -> dict[str, dict[str, Any]]:
    return {r["Properties"][prop]: r["Properties"] for r in resources.values()
            if r.get("Type") == kind and isinstance(r.get("Properties", {}).get(prop), str)}


# ------------------------------------------------------------------ the deployment

def _template_for(stage: str) -> dict[str, Any]:
    """The merge template of `stage`, built in a process of that stage (table names are
    fixed when the models are imported)."""
    out = subprocess.run([sys.executable, "-m", "infra.template", "--stage", stage], cwd=ROOT,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def generated(stage: str, template: dict[str, Any] | None = None) -> Deployment:
    """The deployment `chalice package --stage <stage>` makes: the merge template's
    resources and, for every function, the policy file `.chalice/config.json` names."""
    from chalicelib.core.resources import QUEUES
    from infra import policy as policies
    from infra.template import camel

    template = template or _template_for(stage)
    resources = template["Resources"]
    prefix = stage_env(stage)["RESOURCE_PREFIX"]
    functions = {}
    for name in policies.function_names():
        setting = function_setting(stage, name, "iam_policy_file")
        if not setting:
            raise ValueError(f"{stage}: {name} has no iam_policy_file")
        document = json.loads((ROOT / ".chalice" / setting).read_text())
        logical = "APIHandler" if name == "api_handler" else camel(name)
        props = resources.get(logical, {}).get("Properties", {})
        queues = [f"{prefix}-{spec.key}" for spec in QUEUES if spec.consumer == name]
        functions[name] = Function(name, document, props.get("FunctionName"),
                                   bool(function_setting(stage, name, "xray", False)), queues,
                                   _dead_letter(props, resources))
    return Deployment(stage, prefix, resources, functions, f"generated policies ({stage})")


def _dead_letter(props: dict[str, Any], resources: dict[str, Any]) -> str | None:
    """The name of the queue a function's failed asynchronous invocations go to, if any."""
    target = props.get("DeadLetterQueue", {}).get("TargetArn")
    if not target:
        return None
    return str(resources[target["Fn::GetAtt"][0]]["Properties"]["QueueName"])


def packaged(path: Path) -> Deployment:
    """The deployment in a template `chalice package` wrote (build/<stage>/sam.json)."""
    return packaged_template(json.loads(path.read_text()), str(path))


def policy_drift(template: dict[str, Any], stage: str) -> list[str]:
    """Problems when a packaged template's roles are not one per function, each with exactly
    the policy file `.chalice/config.json` names for it (empty when they are)."""
    from infra import policy as policies
    dep = packaged_template(template, f"{stage} template")
    problems = []
    wanted = policies.function_names()
    if sorted(dep.functions) != sorted(wanted):
        problems.append(f"functions {sorted(dep.functions)} in the template, {sorted(wanted)} in the app")
    roles = [props["Role"]["Fn::GetAtt"][0] for res in template["Resources"].values()
             if res.get("Type") == "AWS::Serverless::Function" for props in [res["Properties"]]]
    if len(set(roles)) != len(roles):
        problems.append("two functions share a role")
    for name, fn in dep.functions.items():
        setting = function_setting(stage, name, "iam_policy_file")
        document = json.loads((ROOT / ".chalice" / setting).read_text()) if setting else None
        if document is None or fn.policy["Statement"] != document["Statement"]:
            problems.append(f"{name}: its role's policy is not {setting} (run make policies, then package)")
    return problems


def packaged_template(template: dict[str, Any], source: str) -> Deployment:
    resources = template["Resources"]
    prefixes = {stage_env(s)["RESOURCE_PREFIX"]: s for s in chalice_config()["stages"]}
    stage = prefix = None
    for res in resources.values():
        if res.get("Type") == "AWS::Serverless::Function":
            env = res["Properties"].get("Environment", {}).get("Variables", {})
            prefix, stage = env.get("RESOURCE_PREFIX"), env.get("STAGE")
            break
    if prefix not in prefixes:
        raise ValueError(f"{source}: cannot tell the stage")
    functions = {}
    for logical, res in resources.items():
        if res.get("Type") != "AWS::Serverless::Function":
            continue
        props = res["Properties"]
        handler = props["Handler"]
        name = "api_handler" if handler == "app.app" else handler.rsplit(".", 1)[-1]
        role = props["Role"]["Fn::GetAtt"][0]
        documents = [p["PolicyDocument"] for p in resources[role]["Properties"].get("Policies", [])]
        statements = [s for d in documents for s in d.get("Statement", [])]
        queues = []
        for event in props.get("Events", {}).values():
            if event.get("Type") == "SQS":
                arn = event["Properties"]["Queue"]
                text = arn["Fn::Sub"] if isinstance(arn, dict) else arn
                queues.append(text.rsplit(":", 1)[-1])
        functions[name] = Function(name, {"Version": "2012-10-17", "Statement": statements},
                                   props.get("FunctionName"), props.get("Tracing") == "Active", queues,
                                   _dead_letter(props, resources))
    return Deployment(str(stage), str(prefix), resources, functions, source)


# ------------------------------------------------------------------ calls -> IAM requests

def _rename(name: str, recorded_prefix: str, prefix: str) -> str:
    return prefix + name[len(recorded_prefix):] if name.startswith(recorded_prefix) else name


def requests_for(call: dict[str, Any], recording: dict[str, Any], dep: Deployment) -> list[Request]:
    """The IAM requests one recorded call makes in `dep` (empty for a local-only call)."""
    from chalicelib.core.resources import SECRETS

    service, operation, target = call["service"], call["operation"], call["target"]
    rename = lambda name: _rename(name, recording["resource_prefix"], dep.prefix)  # noqa: E731
    res = dep.resources
    why = f"{service}.{operation}"
    out: list[Request] = []

    def via(svc: str) -> tuple[tuple[str, str], ...]:
        return (("kms:ViaService", f"{svc}.{REGION}.amazonaws.com"),)

    if service == "dynamodb":
        tables = _by_property(res, "AWS::DynamoDB::Table", "TableName")
        items: list[tuple[str, str, str | None]] = []  # (action, table, index)
        if operation in ("TransactWriteItems", "TransactGetItems"):
            items = [(TRANSACTION_ITEM_ACTION.get(kind, kind), table, None) for kind, table in target["items"]]
        elif operation in ("BatchGetItem", "BatchWriteItem"):
            items = [(operation, table, None) for table in target["tables"]]
        else:
            items = [(operation, target.get("TableName", "*"), target.get("IndexName"))]
        for action, table, index in items:
            if table == f"{recording['resource_prefix']}-{LOCAL_ONLY_TABLE}" and dep.stage != recording["stage"]:
                continue  # the local stack's clock (chalicelib/adapters/testclock.py): no deployed stage has it
            table = rename(table)
            arn = f"arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT}:table/{table}"
            out.append(Request(f"dynamodb:{action}", arn + (f"/index/{index}" if index else ""), (), why))
            key = key_arn(tables.get(table, {}).get("SSESpecification", {}).get("KMSMasterKeyId"), res)
            if key and operation in DYNAMODB_DATA:
                out.append(Request("kms:Decrypt", key, via("dynamodb"), f"{why} on a table under a CMK"))
        return out
    if service == "sqs":
        name = rename(target.get("QueueName") or target.get("QueueUrl", "").rsplit("/", 1)[-1])
        action = SQS_ACTION.get(operation, operation)
        out.append(Request(f"sqs:{action}", f"arn:{PARTITION}:sqs:{REGION}:{ACCOUNT}:{name}", (), why))
        key = key_arn(_by_property(res, "AWS::SQS::Queue", "QueueName").get(name, {}).get("KmsMasterKeyId"), res)
        if key and action == "SendMessage":
            out += [Request("kms:GenerateDataKey", key, via("sqs"), f"{why} to a queue under a CMK"),
                    Request("kms:Decrypt", key, via("sqs"), f"{why} to a queue under a CMK")]
        elif key and action == "ReceiveMessage":
            out.append(Request("kms:Decrypt", key, via("sqs"), f"{why} from a queue under a CMK"))
        return out
    if service == "secretsmanager":
        secret_id = str(target.get("SecretId"))
        if secret_id.startswith("arn:"):
            arn, name = secret_id, secret_id.split(":secret:", 1)[-1]
        else:
            short = secret_id.removeprefix(recording["resource_prefix"] + "/")
            spec = next((s for s in SECRETS if s.key == short), None)
            if spec is not None and spec.local_only and dep.stage != recording["stage"]:
                return []  # only the local stage has (and reads) it
            name = rename(secret_id)
            arn = f"arn:{PARTITION}:secretsmanager:{REGION}:{ACCOUNT}:secret:{name}-{SECRET_SUFFIX}"
        out.append(Request(f"secretsmanager:{operation}", arn, (), why))
        key = key_arn(_by_property(res, "AWS::SecretsManager::Secret", "Name").get(name, {}).get("KmsKeyId"), res)
        if key and operation in ("GetSecretValue", "BatchGetSecretValue"):
            out.append(Request("kms:Decrypt", key, via("secretsmanager"), f"{why} of a secret under a CMK"))
        elif key and operation in ("PutSecretValue", "UpdateSecret", "CreateSecret"):
            out.append(Request("kms:GenerateDataKey", key, via("secretsmanager"), f"{why} of a secret under a CMK"))
            if target.get("ClientRequestToken"):
                out.append(Request("kms:Decrypt", key, via("secretsmanager"),
                                   f"{why} naming a version (compared with an existing one)"))
        return out
    if service == "kms":
        key_id = str(target.get("KeyId"))
        if key_id.startswith("alias/"):
            arn = alias_target("alias/" + rename(key_id[len("alias/"):]), res)
        elif key_id.startswith("arn:"):
            arn = key_id
        else:
            arn = f"arn:{PARTITION}:kms:{REGION}:{ACCOUNT}:key/{key_id}"
        return [Request(f"kms:{operation}", arn, (), why)]
    if service == "sns":
        if target.get("PhoneNumber"):
            return [Request("sns:Publish", "*", (), "sns.Publish to a phone number (no resource ARN)")]
        return [Request(f"sns:{operation}", str(target.get("TargetArn") or target.get("TopicArn")), (), why)]
    if service == "s3":
        # The anchor bucket (chalicelib.ledger.anchors) is the only one the functions use; the
        # deployed name carries the account id (infra.template.anchor_bucket_name).
        bucket = f"arn:{PARTITION}:s3:::{target.get('Bucket')}"
        if str(target.get("Bucket")).startswith(f"{recording['resource_prefix']}-ledger-anchors") \
                and "LedgerAnchorBucket" in res:  # the tests make one per world
            bucket = arn_of("LedgerAnchorBucket", res)
        action = {"HeadObject": "GetObject"}.get(operation, operation)
        out.append(Request(f"s3:{action}", f"{bucket}/{target.get('Key', '')}", (), why))
        if action == "GetObject":  # AWS answers a missing key 403 instead of 404 without it
            out.append(Request("s3:ListBucket", bucket, (),
                               f"{why}: a missing object is 404 (not 403) only with s3:ListBucket"))
        return out
    return [Request(f"{service}:{operation}", "*", (), f"{why} (a service the check does not model)")]


def platform_requests(fn: Function, dep: Deployment) -> list[Request]:
    """What Lambda does with the function's role when the function runs."""
    out = []
    group = f"/aws/lambda/{fn.function_name or dep.prefix + '-stack-' + fn.name + '-RANDOMSUFFIX'}"
    stream = f"arn:{PARTITION}:logs:{REGION}:{ACCOUNT}:log-group:{group}:log-stream:{EXAMPLE_LOG_STREAM}"
    for action in ("logs:CreateLogStream", "logs:PutLogEvents"):
        out.append(Request(action, stream, (), "the Lambda runtime writing the function's logs"))
    if group not in _by_property(dep.resources, "AWS::Logs::LogGroup", "LogGroupName"):
        out.append(Request("logs:CreateLogGroup", f"arn:{PARTITION}:logs:{REGION}:{ACCOUNT}:log-group:{group}:*",
                           (), "the Lambda runtime creating the log group the template does not"))
    if fn.tracing:
        for action in ("xray:PutTraceSegments", "xray:PutTelemetryRecords"):
            out.append(Request(action, "*", (), "active tracing (X-Ray has no resource-level permissions)"))
    queues = _by_property(dep.resources, "AWS::SQS::Queue", "QueueName")
    for queue in fn.queues:
        arn = f"arn:{PARTITION}:sqs:{REGION}:{ACCOUNT}:{queue}"
        for action in EVENT_SOURCE_SQS:
            out.append(Request(action, arn, (), "the SQS event source polling for the function"))
        key = key_arn(queues.get(queue, {}).get("KmsMasterKeyId"), dep.resources)
        if key:
            out.append(Request("kms:Decrypt", key, (("kms:ViaService", f"sqs.{REGION}.amazonaws.com"),),
                               "the SQS event source receiving from a queue under a CMK"))
    if fn.dead_letter:
        # Lambda checks at deploy time, and uses on every failed asynchronous invocation, the
        # function's own role to send to its dead-letter queue (Lambda developer guide,
        # "Dead-letter queues": the execution role needs sqs:SendMessage), through SQS's key.
        arn = f"arn:{PARTITION}:sqs:{REGION}:{ACCOUNT}:{fn.dead_letter}"
        out.append(Request("sqs:SendMessage", arn, (), "Lambda sending a failed invocation to the function's DLQ"))
        key = key_arn(queues.get(fn.dead_letter, {}).get("KmsMasterKeyId"), dep.resources)
        if key:
            for action in ("kms:GenerateDataKey", "kms:Decrypt"):
                out.append(Request(action, key, (("kms:ViaService", f"sqs.{REGION}.amazonaws.com"),),
                                   "Lambda sending to a DLQ under a CMK"))
    return out


# ------------------------------------------------------------------ policy evaluation

def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _glob(pattern: str, value: str, *, case: bool) -> bool:
    pattern = pattern.replace("[", "[[]")
    if not case:
        return fnmatch.fnmatchcase(value.lower(), pattern.lower())
    return fnmatch.fnmatchcase(value, pattern)


def _condition_holds(condition: dict[str, Any], context: dict[str, str]) -> bool:
    for operator, tests in condition.items():
        for key, expected in tests.items():
            actual = context.get(key)
            values = [str(v) for v in _as_list(expected)]
            if operator == "StringEquals":
                ok = actual is not None and actual in values
            elif operator == "StringLike":
                ok = actual is not None and any(_glob(v, actual, case=True) for v in values)
            else:
                return False  # an operator this check does not model never matches
            if not ok:
                return False
    return True


@dataclass(frozen=True)
class Grant:
    """One (statement, action pattern, resource pattern) of a policy."""
    sid: str
    action: str
    resource: str
    condition: str  # JSON of the statement's Condition

    def allows(self, request: Request) -> bool:
        return (_glob(self.action, request.action, case=False)
                and (self.resource == "*" or _glob(self.resource, request.resource, case=True))
                and _condition_holds(json.loads(self.condition), dict(request.context)))


def grants(policy: dict[str, Any], resources: dict[str, Any]) -> tuple[list[Grant], list[Grant]]:
    """The (allow, deny) grants of a policy document, intrinsics resolved."""
    allow, deny = [], []
    for index, statement in enumerate(_as_list(policy.get("Statement", []))):
        for unsupported in ("NotAction", "NotResource", "NotPrincipal"):
            if unsupported in statement:
                raise ValueError(f"{unsupported} is not supported by the check: {statement}")
        sid = statement.get("Sid") or f"#{index}"
        condition = json.dumps(resolve(statement.get("Condition", {}), resources), sort_keys=True)
        for action in _as_list(statement["Action"]):
            for resource in _as_list(resolve(statement["Resource"], resources)):
                grant = Grant(sid, action, str(resource), condition)
                (allow if statement["Effect"] == "Allow" else deny).append(grant)
    return allow, deny


# ------------------------------------------------------------------ the check

@dataclass
class Result:
    denied: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.denied and not self.unused


def check(recording: dict[str, Any], dep: Deployment, *, unused: bool = True) -> Result:
    """Every recorded request allowed by its function's policy; with `unused`, every grant
    needed by some request of the run (only meaningful when the run was complete)."""
    result = Result()
    needed: dict[str, dict[tuple, Request]] = {name: {} for name in dep.functions}
    calls_by_function: dict[str, int] = {}
    for call in recording["calls"]:
        name = call["function"]
        calls_by_function[name] = calls_by_function.get(name, 0) + call["count"]
        if name not in dep.functions:
            result.denied.append(f"{name}: made {call['service']}.{call['operation']} but has no "
                                 f"function (nor policy) in {dep.source}")
            continue
        for request in requests_for(call, recording, dep):
            needed[name].setdefault(request.key(), request)
    for name, fn in dep.functions.items():
        if recording["invocations"].get(name):
            for request in platform_requests(fn, dep):
                needed[name].setdefault(request.key(), request)
    for name, fn in sorted(dep.functions.items()):
        allow, deny = grants(fn.policy, dep.resources)
        for request in sorted(needed[name].values(), key=lambda r: r.key()):
            context = "".join(f" [{k}={v}]" for k, v in request.context)
            if not any(g.allows(request) for g in allow) or any(g.allows(request) for g in deny):
                result.denied.append(f"{name}: {request.action} on {request.resource}{context} "
                                     f"({request.why}) is not allowed by its policy")
        if unused:
            if not recording["invocations"].get(name):
                result.unused.append(f"{name}: never ran in the tests, so none of its grants is proven")
            for grant in allow:
                if not any(grant.allows(r) for r in needed[name].values()):
                    when = f" when {grant.condition}" if grant.condition != "{}" else ""
                    result.unused.append(f"{name}: {grant.action} on {grant.resource}{when} "
                                         f"(statement {grant.sid}) is granted and never needed")
        result.figures[name] = {
            "invocations": recording["invocations"].get(name, 0),
            "calls_recorded": calls_by_function.get(name, 0),
            "iam_requests": len(needed[name]),
            "actions": sorted({r.action for r in needed[name].values()}),
        }
    return result


def load_recording(path: Path = CALLS) -> dict[str, Any]:
    return json.loads(path.read_text())


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.iam_check")
    parser.add_argument("--calls", type=Path, default=CALLS)
    parser.add_argument("--template", type=Path, help="a packaged template (build/<stage>/sam.json)")
    parser.add_argument("--stage", default="prod", help="without --template: the generated policies of this stage")
    args = parser.parse_args(list(argv) if argv is not None else None)
    recording = load_recording(args.calls)
    dep = packaged(args.template) if args.template else generated(args.stage)
    result = check(recording, dep, unused=recording.get("complete", False))
    for line in result.denied + result.unused:
        print(f"FAIL: {line}")
    for name, fig in result.figures.items():
        print(f"{name}: {fig['invocations']} invocations, {fig['calls_recorded']} calls, "
              f"{len(fig['actions'])} actions")
    if not recording.get("complete"):
        print("note: the recording is not from a whole test run; unused grants were not checked")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
