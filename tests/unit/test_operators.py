"""Which IAM callers are operators: sessions of the stage's configured roles, and nobody else."""
from __future__ import annotations

import pytest

from chalicelib.core.principals import Role, is_session_of, unusable

ROLE = "arn:aws:iam::123456789012:role/lending-prod-operator"
WITH_PATH = "arn:aws:iam::123456789012:role/staff/risk/lending-prod-operator"


@pytest.mark.parametrize("caller", [
    "arn:aws:sts::123456789012:assumed-role/lending-prod-operator/jane",
    "arn:aws:sts::123456789012:assumed-role/lending-prod-operator/jane@example.com",
    "arn:aws:sts::123456789012:assumed-role/Lending-Prod-Operator/botocore-session-1",  # IAM ignores case
])
@pytest.mark.parametrize("configured", [ROLE, WITH_PATH])
def test_a_session_of_a_configured_role_is_an_operator_whatever_the_roles_path(caller, configured):
    # The session ARN never carries the role's path: the role is matched by account and name.
    assert is_session_of(caller, [configured])


@pytest.mark.parametrize("caller", [
    "arn:aws:sts::123456789012:assumed-role/lending-dev-operator/jane",      # another role
    "arn:aws:sts::999999999999:assumed-role/lending-prod-operator/jane",     # same name, other account
    "arn:aws-cn:sts::123456789012:assumed-role/lending-prod-operator/jane",  # other partition
    "arn:aws:sts::123456789012:assumed-role/staff/jane",                     # a path segment is not a role
    "arn:aws:sts::123456789012:assumed-role/risk/lending-prod-operator",     # session named like the role
    "arn:aws:iam::123456789012:user/lending-prod-operator",                  # an IAM user of that name
    "arn:aws:iam::123456789012:role/lending-prod-operator",                  # the role ARN is not a caller
    "arn:aws:iam::123456789012:root",
    "arn:aws:sts::123456789012:federated-user/lending-prod-operator",
    "arn:aws:sts::123456789012:assumed-role/lending-prod-operator-2/jane",   # a prefix is not a match
    "arn:aws:sts::123456789012:assumed-role/lending-prod-operator/jane/x",
    "arn:aws:sts::123456789012:assumed-role/lending-prod-operatör/jane",
    "",
])
def test_anyone_else_is_not(caller):
    assert not is_session_of(caller, [ROLE, WITH_PATH])


def test_no_configured_role_means_no_operator():
    assert not is_session_of("arn:aws:sts::123456789012:assumed-role/lending-prod-operator/jane", [])


def test_an_unresolved_or_mistyped_setting_is_reported_and_matches_nobody():
    placeholder = "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/lending-prod-operator"
    typo = "arn:aws:iam::12345678901:role/lending-prod-operator"  # 11 digits
    assert unusable([ROLE, placeholder, typo]) == [placeholder, typo]
    assert Role.of_role_arn(WITH_PATH) == Role("aws", "123456789012", "lending-prod-operator")
    assert not is_session_of("arn:aws:sts::12345678901:assumed-role/lending-prod-operator/x", [typo])
