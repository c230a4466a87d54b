"""Who is calling and what they may do: bearer tokens, roles, FastAPI dependencies."""

from libs.auth.dependencies import bind_token_verifier, current_principal, require
from libs.auth.roles import PERMISSIONS, Role, UnknownPermission, is_allowed, roles_allowed
from libs.auth.tokens import (
    DEVELOPMENT_SECRET,
    AuthSettings,
    InvalidToken,
    Principal,
    SigningKeysUnavailable,
    TokenVerifier,
    issue_token,
)

__all__ = [
    "DEVELOPMENT_SECRET",
    "PERMISSIONS",
    "AuthSettings",
    "InvalidToken",
    "Principal",
    "Role",
    "SigningKeysUnavailable",
    "TokenVerifier",
    "UnknownPermission",
    "bind_token_verifier",
    "current_principal",
    "is_allowed",
    "issue_token",
    "require",
    "roles_allowed",
]
