"""TokenVerifier: a token is trusted only when signature, time, issuer, audience
and the platform's claims all hold; otherwise InvalidToken says why."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr, ValidationError

from libs.auth import (
    DEVELOPMENT_SECRET,
    AuthSettings,
    InvalidToken,
    Principal,
    SigningKeysUnavailable,
    TokenVerifier,
    issue_token,
)
from libs.auth.tokens import REMEMBER_SECONDS

SETTINGS = AuthSettings()
T0 = datetime(2030, 1, 1, tzinfo=UTC)


def claims(**overrides: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    base: dict[str, Any] = {
        "iss": "crm-platform",
        "aud": "crm-api",
        "sub": "user-7",
        "tenant": "acme",
        "roles": ["sales"],
        "iat": now,
        "exp": now + timedelta(minutes=5),
    }
    base.update(overrides)
    return {key: value for key, value in base.items() if value is not None}


def signed(payload: dict[str, Any], secret: str = DEVELOPMENT_SECRET) -> str:
    return jwt.encode(payload, secret, algorithm="HS256")


def reason_for(token: str, verifier: TokenVerifier | None = None) -> str:
    with pytest.raises(InvalidToken) as caught:
        (verifier or TokenVerifier(SETTINGS)).verify(token)
    return caught.value.reason


def test_an_issued_token_verifies_to_its_principal() -> None:
    token = issue_token(SETTINGS, "user-7", "acme", ["sales", "support"], ttl_seconds=60)

    principal = TokenVerifier(SETTINGS).verify(token)

    assert principal == Principal(
        subject="user-7", tenant_id="acme", roles=frozenset({"sales", "support"}), via="jwt"
    )
    assert principal.may("customers:write")
    assert not principal.may("customers:erase")


def test_a_token_signed_with_another_secret_is_rejected() -> None:
    assert reason_for(signed(claims(), secret="x" * 40)) == "bad signature"


def test_an_expired_token_is_rejected() -> None:
    long_ago = datetime.now(UTC) - timedelta(hours=2)
    token = issue_token(SETTINGS, "user-7", "acme", ["sales"], ttl_seconds=60, now=long_ago)

    assert reason_for(token) == "token expired"


def test_expiry_tolerates_small_clock_skew() -> None:
    just_expired = datetime.now(UTC) - timedelta(seconds=70)
    token = issue_token(SETTINGS, "user-7", "acme", ["sales"], ttl_seconds=60, now=just_expired)

    assert TokenVerifier(SETTINGS).verify(token).subject == "user-7"


def test_a_token_for_another_audience_is_rejected() -> None:
    assert reason_for(signed(claims(aud="billing-api"))) == "wrong audience"


def test_a_token_from_another_issuer_is_rejected() -> None:
    assert reason_for(signed(claims(iss="someone-else"))) == "wrong issuer"


@pytest.mark.parametrize("claim", ["exp", "iss", "aud", "sub", "tenant", "roles"])
def test_every_required_claim_must_be_present(claim: str) -> None:
    assert reason_for(signed(claims(**{claim: None}))) == f"missing claim: {claim}"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"tenant": ""}, "claim tenant must be a non-empty string"),
        ({"tenant": 42}, "claim tenant must be a non-empty string"),
        ({"roles": "admin"}, "claim roles must be a list of strings"),
        ({"roles": ["admin", 1]}, "claim roles must be a list of strings"),
        ({"sub": "  "}, "claim sub must be a non-empty string"),
    ],
)
def test_platform_claims_must_have_the_right_shape(overrides: dict[str, Any], reason: str) -> None:
    assert reason_for(signed(claims(**overrides))) == reason


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "not-a-token",
        "a.b.c",
        "...",
        "eyJhbGciOiJIUzI1NiJ9.e30",
        "eyJhbGciOiJIUzI1NiJ9.e30.",
        "Bearer x",
        "\u00e9.\u00e9.\u00e9",
    ],
)
def test_garbage_is_an_invalid_token_not_a_crash(garbage: str) -> None:
    assert reason_for(garbage) in {"malformed token", "algorithm not accepted", "bad signature"}


def test_an_unsigned_token_is_rejected() -> None:
    token = jwt.encode(claims(), key="", algorithm="none")

    assert reason_for(token) == "algorithm not accepted"


def test_a_token_that_is_not_valid_yet_is_rejected() -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    token = issue_token(SETTINGS, "user-7", "acme", ["sales"], now=later)

    assert reason_for(token) == "token not yet valid"


# --- production keys -------------------------------------------------------------


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def test_rs256_tokens_verify_with_the_identity_providers_public_key(
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    settings = AuthSettings(public_key_pem=public_pem(rsa_key))
    token = jwt.encode(claims(), rsa_key, algorithm="RS256")

    assert TokenVerifier(settings).verify(token).tenant_id == "acme"


def test_with_a_public_key_configured_the_development_secret_mints_nothing(
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    settings = AuthSettings(public_key_pem=public_pem(rsa_key))

    assert settings.accepted_algorithms == ("RS256",)
    assert not settings.uses_development_secret
    assert reason_for(signed(claims()), TokenVerifier(settings)) == "algorithm not accepted"


def hs256_signed_with(payload: dict[str, Any], secret: bytes) -> str:
    """Sign by hand: PyJWT itself refuses a PEM as an HMAC secret, an attacker does not."""

    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(payload, default=lambda t: int(t.timestamp())).encode())
    signature = b64(hmac.new(secret, header + b"." + body, hashlib.sha256).digest())
    return (header + b"." + body + b"." + signature).decode()


def test_the_public_key_is_never_accepted_as_an_hmac_secret(rsa_key: rsa.RSAPrivateKey) -> None:
    pem = public_pem(rsa_key)
    settings = AuthSettings(
        algorithms=("HS256", "RS256"), secret=SecretStr("s" * 32), public_key_pem=pem
    )
    verifier = TokenVerifier(settings)
    assert verifier.verify(hs256_signed_with(claims(), b"s" * 32)).subject == "user-7"

    # Algorithm confusion: the attacker signs HS256 with the (public) PEM as the secret.
    forged = hs256_signed_with(claims(), pem.encode())

    assert reason_for(forged, verifier) == "bad signature"


class StaticKeySet(jwt.PyJWKClient):
    """A JWKS client answering from memory, as the identity provider's endpoint would."""

    def __init__(self, key_set: dict[str, Any] | None) -> None:
        super().__init__("https://idp.invalid/.well-known/jwks.json")
        self.key_set = key_set

    def fetch_data(self) -> Any:
        if self.key_set is None:
            raise jwt.PyJWKClientConnectionError("connection refused")
        return self.key_set


def jwk_set(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    public = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {"keys": [{**public, "kid": kid, "use": "sig", "alg": "RS256"}]}


def test_rs256_tokens_verify_against_the_jwks_endpoint(rsa_key: rsa.RSAPrivateKey) -> None:
    settings = AuthSettings(jwks_url="https://idp.invalid/.well-known/jwks.json")
    verifier = TokenVerifier(settings, jwks_client=StaticKeySet(jwk_set(rsa_key, "k1")))
    token = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "k1"})

    assert verifier.fetches_keys
    assert verifier.verify(token).subject == "user-7"
    unknown_kid = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "k2"})
    assert reason_for(unknown_kid, verifier) == "no matching signing key"


def test_an_unreachable_jwks_endpoint_is_not_the_callers_fault(rsa_key: rsa.RSAPrivateKey) -> None:
    settings = AuthSettings(jwks_url="https://idp.invalid/.well-known/jwks.json")
    verifier = TokenVerifier(settings, jwks_client=StaticKeySet(None))
    token = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "k1"})

    with pytest.raises(SigningKeysUnavailable):
        verifier.verify(token)


# --- settings --------------------------------------------------------------------


def test_short_secrets_are_refused_at_start_up() -> None:
    with pytest.raises(ValidationError, match="at least 32 bytes"):
        AuthSettings(secret=SecretStr("too-short"))


def test_a_public_key_algorithm_without_a_key_is_refused_at_start_up() -> None:
    with pytest.raises(ValidationError, match="no public key or JWKS URL"):
        AuthSettings(algorithms=("RS256",))


def test_unknown_algorithms_are_refused_at_start_up() -> None:
    with pytest.raises(ValidationError, match="unsupported"):
        AuthSettings(algorithms=("none",))


def test_the_development_secret_is_flagged() -> None:
    assert AuthSettings().uses_development_secret
    assert not AuthSettings(secret=SecretStr("p" * 48)).uses_development_secret


def test_issue_token_needs_a_shared_secret(rsa_key: rsa.RSAPrivateKey) -> None:
    settings = AuthSettings(public_key_pem=public_pem(rsa_key))

    with pytest.raises(ValueError, match="shared-secret"):
        issue_token(settings, "user-7", "acme", ["sales"])


def test_issue_token_uses_the_injected_clock() -> None:
    token = issue_token(SETTINGS, "user-7", "acme", ["viewer"], ttl_seconds=90, now=T0)

    payload = jwt.decode(token, options={"verify_signature": False})
    assert payload["iat"] == int(T0.timestamp())
    assert payload["exp"] == int(T0.timestamp()) + 90
    assert payload["roles"] == ["viewer"]


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC).timestamp()

    def __call__(self) -> float:
        return self.now


def test_a_verified_token_is_remembered_until_it_expires() -> None:
    clock = FakeClock()
    verifier = TokenVerifier(SETTINGS, clock=clock)
    token = signed(claims(exp=datetime.now(UTC) + timedelta(seconds=20)))

    principal = verifier.verify(token)
    clock.now += 19 + SETTINGS.leeway_seconds

    assert verifier.remembered(token) == principal
    clock.now += 2  # past the expiry and the leeway jwt.decode allows
    assert verifier.remembered(token) is None


def test_a_remembered_token_is_checked_again_after_a_minute() -> None:
    # Long-lived tokens too: a signing key taken out of the JWKS stops being honoured.
    clock = FakeClock()
    verifier = TokenVerifier(SETTINGS, clock=clock)
    token = signed(claims(exp=datetime.now(UTC) + timedelta(hours=8)))

    verifier.verify(token)
    clock.now += REMEMBER_SECONDS - 1
    assert verifier.remembered(token) is not None
    clock.now += 2
    assert verifier.remembered(token) is None


def test_a_rejected_token_is_never_remembered() -> None:
    verifier = TokenVerifier(SETTINGS)
    token = signed(claims(), secret="x" * 40)

    assert reason_for(token, verifier) == "bad signature"
    assert verifier.remembered(token) is None
    assert reason_for(token, verifier) == "bad signature"


def test_the_oldest_remembered_tokens_are_forgotten_first() -> None:
    verifier = TokenVerifier(SETTINGS, remember=2)
    first, second, third = (signed(claims(sub=f"user-{n}")) for n in range(3))

    for token in (first, second, third):
        verifier.verify(token)

    assert verifier.remembered(first) is None
    assert verifier.remembered(second) is not None
    assert verifier.remembered(third) is not None
    assert verifier.verify(first).subject == "user-0"  # verified again, remembered again
