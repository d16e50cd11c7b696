"""Who an IAM caller is, as API Gateway reports it, and whether it is one of a stage's roles.

API Gateway puts the SigV4 caller in `requestContext.identity.userArn`. A session of a role is
`arn:<partition>:sts::<account>:assumed-role/<role-name>/<session-name>`: the role's path is
not in it, and the session name is chosen by whoever assumed the role. The role itself is
`arn:<partition>:iam::<account>:role/<path/><role-name>`. Role names are unique in an account
whatever the path, and IAM compares them without regard to case, so a session belongs to a
configured role when partition, account and role name agree. Anything else (an IAM user, the
account root, a federated user, another account's role of the same name) is not an operator.
"""
from __future__ import annotations

import re
from typing import Iterable, NamedTuple

_ACCOUNT = r"\d{12}"
_PARTITION = r"aws[a-z-]*"
_SESSION = re.compile(rf"^arn:({_PARTITION}):sts::({_ACCOUNT}):assumed-role/([\w+=,.@-]+)/([\w+=,.@-]+)$", re.ASCII)
_ROLE = re.compile(rf"^arn:({_PARTITION}):iam::({_ACCOUNT}):role/(?:[\x21-\x7e]*/)?([\w+=,.@-]+)$", re.ASCII)


class Role(NamedTuple):
    partition: str
    account: str
    name: str  # lower case: IAM role names are case-insensitive

    @classmethod
    def of_role_arn(cls, arn: str) -> "Role | None":
        match = _ROLE.match(arn)
        return cls(match[1], match[2], match[3].lower()) if match else None

    @classmethod
    def of_session_arn(cls, arn: str) -> "Role | None":
        match = _SESSION.match(arn)
        return cls(match[1], match[2], match[3].lower()) if match else None


def is_session_of(caller_arn: str, role_arns: Iterable[str]) -> bool:
    """True when `caller_arn` is a session of one of `role_arns` (role ARNs, paths allowed)."""
    caller = Role.of_session_arn(caller_arn)
    if caller is None:
        return False
    return any(Role.of_role_arn(arn) == caller for arn in role_arns)


def unusable(role_arns: Iterable[str]) -> list[str]:
    """Configured entries that are not role ARNs (a typo, an unresolved `${AWS::AccountId}`)."""
    return [arn for arn in role_arns if Role.of_role_arn(arn) is None]
