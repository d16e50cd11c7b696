"""Load a stage's environment from `.chalice/config.json` before the app is imported.

Table names are fixed when the pynamodb models are defined, so the environment must be in
place before `import app`; every infra entry point calls `apply_stage_env()` first.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHALICE_CONFIG = ROOT / ".chalice" / "config.json"


def chalice_config() -> dict:
    return json.loads(CHALICE_CONFIG.read_text(encoding="utf-8"))


def stage_env(stage: str) -> dict[str, str]:
    cfg = chalice_config()
    env = dict(cfg.get("environment_variables", {}))
    env.update(cfg["stages"][stage].get("environment_variables", {}))
    return env


def apply_stage_env(stage: str) -> dict[str, str]:
    env = stage_env(stage)
    os.environ.update(env)
    return env


def function_env(stage: str, function: str) -> dict[str, str]:
    """A function's environment as chalice resolves it: global, stage, then the function's own."""
    cfg = chalice_config()
    env = stage_env(stage)
    for scope in (cfg.get("lambda_functions", {}), cfg["stages"][stage].get("lambda_functions", {})):
        env.update(scope.get(function, {}).get("environment_variables", {}))
    return env


def operator_role_arns(stage: str) -> list[str]:
    """The stage's operator roles (`OPERATOR_ROLE_ARNS` of the API function), which may hold
    `${AWS::Partition}` and `${AWS::AccountId}`: the deploy resolves them."""
    raw = function_env(stage, "api_handler").get("OPERATOR_ROLE_ARNS", "")
    return [arn for arn in raw.replace(",", " ").split() if arn]


def function_setting(stage: str, function: str, key: str, default=None):  # type: ignore[no-untyped-def]
    """A per-function setting, stage first, then global, like chalice resolves it."""
    cfg = chalice_config()
    for scope in (cfg["stages"][stage].get("lambda_functions", {}), cfg.get("lambda_functions", {})):
        if key in scope.get(function, {}):
            return scope[function][key]
    for scope in (cfg["stages"][stage], cfg):
        if key in scope:
            return scope[key]
    return default


def visibility_timeout(stage: str, consumer: str) -> int:
    """SQS visibility timeout: six times the consumer's Lambda timeout (AWS's advice)."""
    return 6 * int(function_setting(stage, consumer, "lambda_timeout", 60))


def lambda_functions(chalice_app) -> list[str]:  # type: ignore[no-untyped-def]
    """Every Lambda function `chalice package` makes of the app, by chalice's name: the API
    handler, each schedule and queue consumer, each authorizer."""
    names = ["api_handler"] + [source.name for source in chalice_app.event_sources]
    names += [auth.name for auth in chalice_app.builtin_auth_handlers]
    return sorted(set(names), key=names.index)


def lambda_name(prefix: str, function: str) -> str:
    """The deployed function's name: set explicitly (infra/template.py), so its log group
    `/aws/lambda/<name>` is known without the stack's name."""
    return f"{prefix}-{function}"


def logical_id(function: str) -> str:
    """The function's resource name in the packaged template."""
    from chalice.utils import to_cfn_resource_name
    return "APIHandler" if function == "api_handler" else to_cfn_resource_name(function)
