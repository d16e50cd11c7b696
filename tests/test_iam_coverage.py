"""The deployed functions' IAM policies, proven by what the functions did in this test run.

moto enforces no IAM and no KMS key policy, so every other test would pass with roles that
AWS refuses. tests/conftest.py records each AWS call each Lambda handler makes across the
run (infra/iam_recorder.py); these tests, which run after all others, turn the calls into the
IAM requests AWS makes for them (with the KMS calls DynamoDB and Secrets Manager make on the
caller's behalf, the SQS event source's polling, logs and X-Ray) and check them against each
function's own policy (infra/iam_check.py):

- every request is allowed by the policy of the function that made it (any part of the suite);
- every (action, resource) a policy grants was needed by some request (whole runs only:
  `make test` sets IAM_COVERAGE=required, so there it never skips).

The policies checked are the files `chalice package` puts in the template (.chalice/config.json
-> .chalice/policies/<stage>/<function>.json) with the merge template of that stage, or the
packaged template itself with IAM_TEMPLATE=build/prod/sam.json. IAM_CALLS=build/iam-calls.json
checks a saved recording (the last whole run's) instead of this run's, e.g. after changing a
policy:  IAM_CALLS=build/iam-calls.json pytest tests/test_iam_coverage.py
"""
from __future__ import annotations

import json
import os

import pytest

from infra import iam_check
from tests.conftest import ROOT, iam_recording

pytestmark = pytest.mark.iam_coverage
STAGES = ("prod", "dev")


@pytest.fixture(scope="module")
def recording():
    saved = os.environ.get("IAM_CALLS")
    return iam_check.load_recording(ROOT / saved) if saved else iam_recording()


@pytest.fixture(scope="module", params=STAGES)
def deployment(request):
    packaged = os.environ.get("IAM_TEMPLATE")
    if packaged:
        dep = iam_check.packaged(ROOT / packaged)
        if dep.stage != request.param:
            pytest.skip(f"{packaged} is the {dep.stage} stage")
        return dep
    return iam_check.generated(request.param)


def test_every_call_a_function_made_is_allowed_by_its_own_policy(recording, deployment):
    result = iam_check.check(recording, deployment, unused=False)
    assert not result.denied, f"{len(result.denied)} requests denied in {deployment.source}:\n" + \
        "\n".join(result.denied)


def test_every_grant_of_every_policy_was_needed(recording, deployment):
    required = os.environ.get("IAM_COVERAGE") == "required"
    if not recording["complete"] and not required:
        pytest.skip("only part of the suite ran: grants are proven needed by a whole run (make test)")
    assert recording["complete"], "IAM_COVERAGE=required but the run left tests out"
    assert recording["invocations"], "no Lambda handler ran: nothing was recorded"
    result = iam_check.check(recording, deployment)
    report = ROOT / "build" / f"iam-report-{deployment.stage}.json"
    report.parent.mkdir(exist_ok=True)
    report.write_text(json.dumps({"source": deployment.source, "figures": result.figures,
                                  "denied": result.denied, "unused": result.unused}, indent=1) + "\n")
    assert not result.unused, f"{len(result.unused)} grants never needed in {deployment.source}" + \
        (f" ({recording['failed_tests']} tests failed: their calls may be missing)" if recording["failed_tests"] else "") + \
        ":\n" + "\n".join(result.unused)

