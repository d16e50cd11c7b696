"""HTTP routes of the identity slice, its authenticators and its API Gateway authorizer.

Authentication: `route(auth="bearer")` verifies the access token in the function itself, in
every stage, with `service.authenticate_access_token`. `bearer_authorizer` below is a Chalice
custom (TOKEN) authorizer running the very same function at API Gateway, for routes that
attach it; it adds rejection at the edge but the in-function check stays authoritative,
because `chalice local` and chalice's test client do not enforce authorizers and because a
route without it must still be safe. The authorizer is not cached (ttl 0), so a revoked
session is refused at once.
"""
from __future__ import annotations

import hmac
import ipaddress
from typing import Any

from chalice import AuthResponse, Blueprint, IAMAuthorizer
from pydantic import Field

from chalicelib.auth import service
from chalicelib.auth.cards import CARD_PATTERN
from chalicelib.auth.otp import CODE_PATTERN, PHONE_PATTERN
from chalicelib.auth.secret_store import secret_json
from chalicelib.auth.service import ID_NUMBER_PATTERN
from chalicelib.core import config
from chalicelib.core.errors import Unauthorized
from chalicelib.api.http import AUTHENTICATORS, AUTHORIZERS, ApiModel, route
from chalicelib.core.observability import logger

bp = Blueprint(__name__)


def _bearer(request: Any) -> str:
    return service.authenticate_access_token(service.bearer_token(request.headers.get("authorization")))


def _ops(request: Any) -> str:
    return service.authenticate_operator(request.headers, request.context)


AUTHENTICATORS["bearer"] = _bearer
AUTHENTICATORS["ops"] = _ops


@bp.authorizer(ttl_seconds=0)
def bearer_authorizer(auth_request: Any) -> AuthResponse:
    """API Gateway TOKEN authorizer: the same verification as the `bearer` authenticator."""
    try:
        user_id = service.authenticate_access_token(service.bearer_token(auth_request.token))
    except Unauthorized as err:
        logger.info("authorizer refused a token", extra={"code": err.code})
        raise Exception("Unauthorized") from None  # API Gateway answers 401 to this message
    return AuthResponse(routes=["*"], principal_id=user_id, context={"user_id": user_id})


# In AWS, API Gateway checks too: the bearer routes get this authorizer, the ops routes IAM
# (SigV4). Not in `local`, where chalice local would answer refusals in its own format; the
# in-function check runs in every stage either way.
if not config.is_local():
    AUTHORIZERS["bearer"] = bearer_authorizer
    AUTHORIZERS["ops"] = IAMAuthorizer()


# Behind the page's CloudFront distribution (infra/web.py) API Gateway's sourceIp is an edge
# server's, shared by every borrower it serves. The distribution's viewer-request function puts
# the viewer's own address in VIEWER_HEADER (replacing any the client sent), and the origin adds
# ORIGIN_HEADER holding the `origin` secret, which no client knows. Only with both is the
# viewer's address used for per-address limits; a direct caller's VIEWER_HEADER is ignored.
VIEWER_HEADER, ORIGIN_HEADER = "x-viewer-address", "x-origin-verify"


def _source_ip(request: Any) -> str:
    peer = ((request.context or {}).get("identity") or {}).get("sourceIp") or "unknown"
    headers = request.headers or {}
    viewer, proof = headers.get(VIEWER_HEADER), headers.get(ORIGIN_HEADER)
    if not viewer or not proof:
        return peer
    key = secret_json("origin").get("key")
    if not isinstance(key, str) or not key or not hmac.compare_digest(proof.encode(), key.encode()):
        logger.warning("viewer address refused: the origin header does not match", extra={"peer": peer})
        return peer
    try:
        return str(ipaddress.ip_address(viewer.strip()))
    except ValueError:
        return peer


# Formats the services check (422 PHONE_INVALID, ID_NUMBER_INVALID, CARD_INVALID; 401
# OTP_INVALID), stated in the OpenAPI document: a request that breaks one is well-formed JSON
# that breaks a rule, so it stays 422 rather than pydantic's 400.
def _phone(**extra: object) -> object:
    return Field(min_length=1, max_length=32, json_schema_extra={"pattern": PHONE_PATTERN},
                 description="Mainland China mobile number: 11 digits starting 13-19, `+86` "
                             "optional (else 422 PHONE_INVALID).", examples=["13800138000"], **extra)


def _otp(description: str, **extra: object) -> object:
    return Field(min_length=1, max_length=16, json_schema_extra={"pattern": CODE_PATTERN},
                 description=description, examples=["123456"], **extra)


class WechatBody(ApiModel):
    code: str = Field(min_length=1, max_length=256, examples=["dev-alice"], description=(
        "The OAuth code the WeChat client returned. In the local sandbox: `dev-<openid>`."))


class PhoneBody(ApiModel):
    phone: str = _phone()


class PhoneCodeBody(ApiModel):
    phone: str = _phone()
    code: str = _otp("The 6-digit code sent to that phone (POST /v1/auth/sms-codes); 5 minutes, "
                     "one use, 5 tries.")


class PhoneBindBody(ApiModel):
    phone: str = _phone()
    code: str = _otp("The 6-digit code sent to `phone` with POST /v1/auth/sms-codes.")
    # Only when a phone is bound already (replacing it): one proof of the bound phone.
    current_code: str | None = _otp(
        "Replacing a bound phone: the code sent to the bound phone with "
        "POST /v1/me/phone/current-code. Without it (phone lost), send `name` and `id_number`.",
        default=None)
    name: str | None = Field(default=None, min_length=1, max_length=64, description=(
        "Replacing a bound phone that is lost: the verified real name, with `id_number`."))
    id_number: str | None = Field(default=None, min_length=1, max_length=32,
                                  json_schema_extra={"pattern": ID_NUMBER_PATTERN}, description=(
        "Replacing a bound phone that is lost: the verified resident ID number, with `name`."))


class RefreshBody(ApiModel):
    refresh_token: str = Field(min_length=1, max_length=4096, examples=["eyJhbGciOiJFZERTQSJ9.e30.c2ln"],
                               description="A refresh token; each works once.")


class IdentityBody(ApiModel):
    name: str = Field(min_length=1, max_length=64, examples=["张三"],
                      description="The legal name on the resident ID card.")
    id_number: str = Field(min_length=1, max_length=32, json_schema_extra={"pattern": ID_NUMBER_PATTERN},
                           examples=["110101199003071233"], description=(
        "18-character resident ID number (GB 11643): 17 digits, then a digit or X. Its region "
        "code, birth date (age 18-65) and check digit must be valid (else 422)."))


class CardBody(ApiModel):
    card_number: str = Field(min_length=1, max_length=40, json_schema_extra={"pattern": CARD_PATTERN},
                             examples=["6222021234567890128"], description=(
        "A debit card of a supported bank: 16-19 digits, optionally grouped by single spaces "
        "or dashes; it must pass the Luhn check (else 422 CARD_INVALID)."))
    # Only when a loan is outstanding: a code just sent to the bound phone (step-up).
    code: str | None = _otp("Needed only while a loan is outstanding (403 SMS_CODE_REQUIRED "
                            "otherwise): a code sent to the bound phone with POST /v1/auth/sms-codes.",
                            default=None)


@route(bp, "/v1/auth/wechat", "POST", summary="Sign in with a WeChat OAuth code", tag="auth",
       body=WechatBody, errors=("401 OAUTH_CODE_INVALID", "503 DEPENDENCY_UNAVAILABLE"))
def wechat_sign_in(request: Any, body: WechatBody) -> dict[str, Any]:
    return service.sign_in_wechat(body.code)


@route(bp, "/v1/auth/sms-codes", "POST", summary="Text a 6-digit sign-in code to a phone",
       tag="auth", body=PhoneBody, status=202,
       errors=("422 PHONE_INVALID", "429 SMS_RATE_LIMITED", "503 DEPENDENCY_UNAVAILABLE"))
def send_sms_code(request: Any, body: PhoneBody) -> dict[str, Any]:
    return service.send_sms_code(body.phone, _source_ip(request))


@route(bp, "/v1/auth/sms-login", "POST", summary="Sign in with a phone and its SMS code",
       tag="auth", body=PhoneCodeBody,
       errors=("401 OTP_INVALID", "422 PHONE_INVALID", "429 OTP_LOCKED"))
def sms_sign_in(request: Any, body: PhoneCodeBody) -> dict[str, Any]:
    return service.sign_in_sms(body.phone, body.code)


@route(bp, "/v1/auth/refresh", "POST", summary="Exchange a refresh token (each works once)",
       tag="auth", body=RefreshBody,
       errors=("401 TOKEN_INVALID", "401 TOKEN_EXPIRED", "401 TOKEN_REVOKED", "401 REFRESH_TOKEN_REUSED"))
def refresh_tokens(request: Any, body: RefreshBody) -> dict[str, Any]:
    return service.refresh(body.refresh_token)


@route(bp, "/v1/me", "GET", summary="The signed-in user's profile, cards and credit line",
       tag="me", auth="bearer")
def get_me(request: Any, principal: str) -> dict[str, Any]:
    return service.me(principal)


@route(bp, "/v1/me/phone", "POST", summary="Bind a phone proven by its SMS code; replacing a "
       "bound one also needs proof of it, ends other sessions and holds drawdowns and new cards "
       "for 24 hours", tag="me", body=PhoneBindBody, auth="bearer",
       errors=("401 OTP_INVALID", "403 CURRENT_PHONE_PROOF_REQUIRED", "409 PHONE_TAKEN",
               "409 PROFILE_CHANGED", "422 PHONE_INVALID", "429 OTP_LOCKED",
               "429 IDENTITY_RATE_LIMITED", "503 DEPENDENCY_UNAVAILABLE"))
def bind_phone(request: Any, body: PhoneBindBody, principal: str) -> dict[str, Any]:
    return service.bind_phone(principal, body.phone, body.code, current_code=body.current_code,
                              name=body.name, id_number=body.id_number,
                              session=service.session_family(request.headers.get("authorization")))


@route(bp, "/v1/me/phone/current-code", "POST", summary="Text a code to the bound phone, to "
       "confirm replacing it", tag="me", auth="bearer", status=202,
       errors=("409 NO_PHONE_BOUND", "429 SMS_RATE_LIMITED", "503 DEPENDENCY_UNAVAILABLE"))
def send_current_phone_code(request: Any, principal: str) -> dict[str, Any]:
    return service.send_current_phone_code(principal, _source_ip(request))


@route(bp, "/v1/me/identity", "POST", summary="Real-name verification with a resident ID",
       tag="me", body=IdentityBody, auth="bearer",
       errors=("409 IDENTITY_TAKEN", "409 IDENTITY_ALREADY_VERIFIED", "422 ID_NUMBER_INVALID",
               "422 AGE_NOT_ELIGIBLE", "422 IDENTITY_MISMATCH", "429 IDENTITY_RATE_LIMITED",
               "503 DEPENDENCY_UNAVAILABLE"))
def verify_identity(request: Any, body: IdentityBody, principal: str) -> dict[str, Any]:
    return service.verify_identity(principal, body.name, body.id_number)


@route(bp, "/v1/me/bank-cards", "POST", summary="Add a debit card for payouts and repayments",
       tag="me", body=CardBody, auth="bearer", status=201,
       errors=("401 OTP_INVALID", "403 IDENTITY_REQUIRED", "403 PHONE_REQUIRED", "403 SECURITY_HOLD",
               "403 SMS_CODE_REQUIRED",
               "409 CARD_ALREADY_ADDED", "422 CARD_INVALID", "422 CARD_LIMIT_REACHED",
               "429 OTP_LOCKED"))
def add_bank_card(request: Any, body: CardBody, principal: str) -> dict[str, Any]:
    return service.add_card(principal, body.card_number, body.code)


@route(bp, "/v1/me/bank-cards/{card_id}", "GET", summary="One of the user's bank cards",
       tag="me", auth="bearer", errors=("404 CARD_NOT_FOUND",))
def get_bank_card(request: Any, card_id: str, principal: str) -> dict[str, Any]:
    return service.get_card(principal, card_id)
