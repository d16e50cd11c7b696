"""Partners' settings (the secrets an operator fills after the first deploy), checked by name.

CloudFormation creates the WeChat, real-name, payout and wallet secrets holding `{}`: until an
operator fills them, an adapter built from one would fail on its first call. Here each
missing setting is named (`wallet.base_url`), never its value: `missing()` for GET /health
and `python -m infra.readiness`, `SettingsMissing` for the adapters (503, nothing done).
"""
from __future__ import annotations

from typing import Any, Mapping

from chalicelib.core.errors import DependencyDown
from chalicelib.core.resources import SecretSpec


def missing(spec: SecretSpec, value: Mapping[str, Any]) -> list[str]:
    """`<secret>.<field>` for each required setting that is absent, empty or not a string;
    a `base_url` that is not https says so."""
    out = []
    for field in spec.fields:
        setting = value.get(field)
        if not isinstance(setting, str) or not setting.strip():
            out.append(f"{spec.key}.{field}")
        elif field == "base_url" and not setting.startswith("https://"):
            out.append(f"{spec.key}.{field} (must start with https://)")
    return out


class SettingsMissing(DependencyDown):
    """A partner's settings are not filled in: the caller gets a 503 (nothing was done) and
    the logs and `str()` name each missing setting, so an operator knows what to fill."""

    def __init__(self, spec: SecretSpec, names: list[str], secret_name: str) -> None:
        super().__init__("A partner service this needs is not set up yet; nothing was changed. "
                         "Please try again later.")
        self.spec = spec
        self.names = names
        self.secret_name = secret_name

    def __str__(self) -> str:
        return (f"secret {self.secret_name} is missing {', '.join(self.names)} "
                "(fill it as the README's 'Secrets to fill after the first deploy' shows)")
