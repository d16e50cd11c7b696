"""After a deploy: which partner settings an operator still has to fill, by name, never a value.

    python -m infra.readiness --stage prod        # or: make check-secrets STAGE=prod

Reads each partner secret of the stage (`<prefix>/wechat`, `realname`, `payout`, `wallet`)
with the operator's own AWS credentials, prints `ok` or the settings it misses
(`wallet.base_url`), and exits 1 while any is missing. GET /health shows the same for the
partners the API calls; the payout secret is read only by the disbursement consumer, so this
command is where a missing payout setting shows before the first loan waits for it.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def missing_settings(client: Any, prefix: str) -> dict[str, list[str]]:
    """{secret name: the settings it misses} for every partner secret of the prefix."""
    from chalicelib.core.resources import PARTNER_SECRETS
    from chalicelib.core.settings import missing

    out = {}
    for spec in PARTNER_SECRETS:
        name = f"{prefix}/{spec.key}"
        try:
            raw = client.get_secret_value(SecretId=name).get("SecretString") or "{}"
        except client.exceptions.ResourceNotFoundException:
            out[name] = [f"{spec.key} (the secret {name} does not exist: deploy the stack first)"]
            continue
        try:
            value = json.loads(raw)
        except ValueError:
            value = {}
        out[name] = missing(spec, value if isinstance(value, dict) else {})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.readiness")
    parser.add_argument("--stage", default="prod")
    args = parser.parse_args(argv)
    from infra.stage import apply_stage_env
    env = apply_stage_env(args.stage)
    import boto3
    results = missing_settings(boto3.client("secretsmanager"), env["RESOURCE_PREFIX"])
    for name, names in results.items():
        print(f"{name}: " + ("ok" if not names else "missing " + ", ".join(names)))
    if any(results.values()):
        print("Fill them as README.md 'Secrets to fill after the first deploy' shows.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
