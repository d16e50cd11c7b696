"""`make verify-ledger`: walk every chain and anchor of the ledger and report each broken link.

    make verify-ledger                       # the running local stack (`make run`)
    make verify-ledger STAGE=prod            # a deployed stage, with your AWS credentials
    make verify-ledger LOAN=<loan_id>        # one loan: its chain and its proofs

Runs `chalicelib.ledger.audit.verify` in this process, against the local stack's moto or the
stage's own DynamoDB tables and anchor bucket (the operator's credentials need read access to
them; the deployed bucket's name is `<prefix>-ledger-anchors-<account>`). Unlike
`POST /v1/ops/ledger/verify`, no API request limit bounds it. Prints one line per problem and
exits 1 when there is any, 0 when every chain and anchor holds.
"""
from __future__ import annotations

import argparse
import json
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.verify_ledger")
    parser.add_argument("--stage", default="local")
    parser.add_argument("--loan", default=None, help="one loan id (default: the whole book)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    if args.stage == "local":
        from infra.local_stack import _local_env, _port_free, _settings
        host, _api_port, moto_port = _settings()
        if _port_free(host, moto_port):
            print(f"no local stack on {host}:{moto_port}; start it with `make run`", file=sys.stderr)
            return 2
        _local_env(host, moto_port)
    else:
        from infra.stage import apply_stage_env
        apply_stage_env(args.stage)
        if "ANCHOR_BUCKET" not in os.environ:
            import boto3
            account = boto3.client("sts").get_caller_identity()["Account"]
            os.environ["ANCHOR_BUCKET"] = f"{os.environ['RESOURCE_PREFIX']}-ledger-anchors-{account}"
    import app  # noqa: F401 - registers every table
    from chalicelib.ledger import audit

    report = audit.verify(args.loan)
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        for b in report["broken"]:
            where = " ".join(x for x in (b.get("date"), b["loan_id"], b["entry_id"]) if x)
            print(f"BROKEN {where}: {b['why']}")
        print(f"{report['checked']} entries and {report['anchors']} anchors checked: "
              + ("every chain and anchor holds" if not report["broken"] else f"{len(report['broken'])} problem(s)"))
    return 1 if report["broken"] else 0


if __name__ == "__main__":
    sys.exit(main())
