"""Where the code may touch AWS, seen from the folders (docs/DESIGN.md, "Layout"):
`chalicelib/core` holds small pure primitives everyone uses (money-free: clock, config,
errors, messages, personal-data masking, principals, resource names, settings, batch jobs);
`chalicelib/adapters` the clients of AWS and the network (boto3, pynamodb's base, the
idempotency store, queues, the local stack's clock); `chalicelib/api` the HTTP surface
(routing, error mapping, the OpenAPI document, queue-event glue). The money floor has its own
test (test_money_floor.py)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.unit.test_money_floor import imports_of

CHALICELIB = Path(__file__).resolve().parents[2] / "chalicelib"
CORE = CHALICELIB / "core"
# Powertools' logger and metrics write to stdout (CloudWatch collects them): no AWS call.
CORE_EXCEPTIONS = {"observability.py": {"aws_lambda_powertools"}}
AWS = {"boto3", "botocore", "pynamodb", "chalice"}


def outside(module: str, names: set[str]) -> list[str]:
    """What a core module imports beyond the standard library and the core itself."""
    extra = CORE_EXCEPTIONS.get(module, set())
    return sorted(n for n in names if n.split(".")[0] not in sys.stdlib_module_names
                  and n != "__future__" and not (n == "chalicelib.core" or n.startswith("chalicelib.core."))
                  and n.split(".")[0] not in extra)


@pytest.mark.parametrize("module", sorted(p.name for p in CORE.glob("*.py")))
def test_the_core_imports_only_the_standard_library_and_itself(module):
    assert outside(module, imports_of(CORE / module)) == [], f"core/{module} reaches out"


def test_the_check_catches_an_adapter_in_the_core(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from chalicelib.adapters import aws\nimport boto3\nfrom chalicelib.core import errors\n")
    assert outside("bad.py", imports_of(bad)) == ["boto3", "chalicelib.adapters", "chalicelib.adapters.aws"]


def test_every_adapter_talks_to_aws_or_the_network():
    """The adapters folder is not a second core: each file there does I/O."""
    for path in sorted((CHALICELIB / "adapters").glob("*.py")):
        if path.name == "__init__.py":
            continue
        names = imports_of(path)
        tops = {n.split(".")[0] for n in names}
        assert tops & AWS or "urllib.request" in names or "chalicelib.adapters.aws" in names, \
            f"adapters/{path.name} does no I/O: it belongs in core/"
