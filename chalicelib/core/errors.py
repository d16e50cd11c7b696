"""Domain errors carry the contract's HTTP status and error code.

They are plain exceptions (no chalice import) so pure domain code can raise them; the HTTP
layer maps them to `{"error": {"code", "message"}}` in one place (`api.http`). The message
is English; `params` fill in the Chinese one (`core.messages`), which clients get by default.
"""
from __future__ import annotations

from typing import Any


class LendingError(Exception):
    status = 500
    code = "INTERNAL_ERROR"

    def __init__(self, message: str, *, code: str | None = None,
                 headers: dict[str, str] | None = None, params: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.headers = headers or {}
        self.params = dict(params or {})


class BadRequest(LendingError):
    status = 400
    code = "BAD_REQUEST"


class Unauthorized(LendingError):
    status = 401
    code = "UNAUTHORIZED"


class Forbidden(LendingError):
    status = 403
    code = "FORBIDDEN"


class NotFound(LendingError):
    status = 404
    code = "NOT_FOUND"


class Conflict(LendingError):
    status = 409
    code = "CONFLICT"


class RuleViolation(LendingError):
    """Well-formed input that breaks a business rule (checksum, limit, cap)."""
    status = 422
    code = "UNPROCESSABLE"


class RateLimited(LendingError):
    status = 429
    code = "RATE_LIMITED"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None,
                 params: dict[str, Any] | None = None) -> None:
        super().__init__(message, code=code, headers={"Retry-After": str(max(1, retry_after))},
                         params={"retry_after": max(1, retry_after), **(params or {})})
        self.retry_after = retry_after


class DependencyDown(LendingError):
    status = 503
    code = "DEPENDENCY_UNAVAILABLE"


class JobIncomplete(LendingError):
    """A scheduled job did every item it could, but some failed even after retries. Raised by
    the job's handler after the others are done, so the invocation is reported as failed (the
    function's Errors metric) and Lambda's asynchronous retry runs the same event again."""
    status = 500
    code = "JOB_INCOMPLETE"

    def __init__(self, message: str, *, failed: tuple[str, ...] = (), code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.failed = failed  # the ids of the items that failed, all of them
