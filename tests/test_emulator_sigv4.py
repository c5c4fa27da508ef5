"""The emulator's SigV4 check: the service's answers to missing, malformed, mis-scoped, stale and wrong signatures."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from multidict import CIMultiDict
from test_emulator_support import KEY_ID, SECRET, error_code, post_raw, post_signed, sign, valid

from aiopersonalize_events.emulator import Emulator
from aiopersonalize_events.emulator._answers import Refusal
from aiopersonalize_events.emulator._sigv4 import SignatureVerifier, canonical_query, parse_authorization


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp session for raw requests."""
    async with aiohttp.ClientSession() as raw:
        yield raw


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    """An emulator verifying the test key pair."""
    async with Emulator(credentials={KEY_ID: SECRET}) as emulator:
        yield emulator


def _body() -> bytes:
    return json.dumps(valid("PutItems")).encode()


async def test_botocore_signature_is_accepted(emu: Emulator, session: aiohttp.ClientSession) -> None:
    """A request signed by botocore's signer with the right key pair is accepted (200, {})."""
    status, headers, payload = await post_signed(session, emu.endpoint_url, "/items", _body())
    assert (status, payload) == (200, {})
    assert headers["Content-Type"].startswith("application/json")
    assert headers["x-amzn-RequestId"]


async def test_session_token_signed_request_is_accepted(emu: Emulator, session: aiohttp.ClientSession) -> None:
    """Temporary credentials (x-amz-security-token signed in) verify like long-term ones."""
    status, _, _ = await post_signed(session, emu.endpoint_url, "/items", _body(), token="session-token-value")
    assert status == 200


async def test_missing_authorization_is_missing_token(emu: Emulator, session: aiohttp.ClientSession) -> None:
    """No Authorization header: 403 MissingAuthenticationTokenException."""
    status, headers, payload = await post_raw(session, emu.endpoint_url + "/items", _body())
    assert status == 403
    assert error_code(headers) == "MissingAuthenticationTokenException"
    assert payload == {"message": "Missing Authentication Token"}
    assert headers["x-amzn-ErrorType"].startswith("MissingAuthenticationTokenException:http://internal.amazon.com/")


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer abc",
        "AWS4-HMAC-SHA256 SignedHeaders=host;x-amz-date, Signature=00",
        "AWS4-HMAC-SHA256 Credential=AKIDTEST/20240101/us-east-1/personalize, SignedHeaders=host, Signature=00",
    ],
    ids=["other-scheme", "no-credential", "four-part-credential"],
)
async def test_unreadable_authorization_is_incomplete_signature(
    emu: Emulator, session: aiohttp.ClientSession, authorization: str
) -> None:
    """An Authorization header that cannot be read: 400 IncompleteSignatureException."""
    headers = {"Authorization": authorization, "X-Amz-Date": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())}
    status, answer, _ = await post_raw(session, emu.endpoint_url + "/items", _body(), headers)
    assert status == 400
    assert error_code(answer) == "IncompleteSignatureException"


async def test_signing_name_must_be_personalize(emu: Emulator, session: aiohttp.ClientSession) -> None:
    """Signed for 'personalize-events' (the endpoint prefix) instead of 'personalize': 403 InvalidSignatureException."""
    status, headers, payload = await post_signed(
        session, emu.endpoint_url, "/items", _body(), service="personalize-events"
    )
    assert status == 403
    assert error_code(headers) == "InvalidSignatureException"
    assert "Credential should be scoped to correct service: 'personalize'" in payload["message"]


async def test_region_restriction(session: aiohttp.ClientSession) -> None:
    """With region= set, a scope naming another region gets 403 InvalidSignatureException."""
    async with Emulator(credentials={KEY_ID: SECRET}, region="us-east-1") as emu:
        ok, _, _ = await post_signed(session, emu.endpoint_url, "/items", _body())
        status, headers, payload = await post_signed(session, emu.endpoint_url, "/items", _body(), region="eu-west-1")
    assert ok == 200
    assert (status, error_code(headers)) == (403, "InvalidSignatureException")
    assert "valid region" in payload["message"]


@pytest.mark.parametrize(
    ("offset", "text"),
    [(+3600.0, "Signature expired: "), (-3600.0, "Signature not yet current: ")],
    ids=["expired", "future"],
)
async def test_stale_date_is_refused(session: aiohttp.ClientSession, offset: float, text: str) -> None:
    """x-amz-date more than 15 minutes from the service's clock: 403 InvalidSignatureException as AWS words it."""
    async with Emulator(credentials={KEY_ID: SECRET}, wall_clock=lambda: time.time() + offset) as emu:
        status, headers, payload = await post_signed(session, emu.endpoint_url, "/items", _body())
    assert (status, error_code(headers)) == (403, "InvalidSignatureException")
    assert payload["message"].startswith(text)
    assert "15 min." in payload["message"]


async def test_small_skew_is_accepted(session: aiohttp.ClientSession) -> None:
    """A clock 10 minutes off is within the 15 minutes the service allows."""
    async with Emulator(credentials={KEY_ID: SECRET}, wall_clock=lambda: time.time() + 600) as emu:
        status, _, _ = await post_signed(session, emu.endpoint_url, "/items", _body())
    assert status == 200


async def test_tampered_body_is_invalid_signature(emu: Emulator, session: aiohttp.ClientSession) -> None:
    """A body changed after signing no longer matches: 403 InvalidSignatureException, nothing stored."""
    url = emu.endpoint_url + "/items"
    headers = sign(url, _body())
    tampered = _body().replace(b"item-1", b"item-2")
    status, answer, payload = await post_raw(session, url, tampered, headers)
    assert (status, error_code(answer)) == (403, "InvalidSignatureException")
    assert "The String-to-Sign should have been" in payload["message"]
    assert emu.items() == []


async def test_wrong_secret_message_redacts_the_session_token(emu: Emulator, session: aiohttp.ClientSession) -> None:
    """The mismatch message shows the canonical request but never the session token or a secret."""
    status, _, payload = await post_signed(
        session, emu.endpoint_url, "/items", _body(), secret="bad", token="token-that-must-not-leak"
    )
    assert status == 403
    assert "x-amz-security-token:<redacted>" in payload["message"]
    assert "token-that-must-not-leak" not in payload["message"]
    assert SECRET not in payload["message"]


async def test_host_must_be_signed(emu: Emulator, session: aiohttp.ClientSession) -> None:
    """A signature whose SignedHeaders leave out host: 403 InvalidSignatureException."""
    date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    authorization = (
        f"AWS4-HMAC-SHA256 Credential={KEY_ID}/{date[:8]}/us-east-1/personalize/aws4_request, "
        "SignedHeaders=x-amz-date, Signature=" + "0" * 64
    )
    headers = {"Authorization": authorization, "X-Amz-Date": date}
    status, answer, payload = await post_raw(session, emu.endpoint_url + "/items", _body(), headers)
    assert (status, error_code(answer)) == (403, "InvalidSignatureException")
    assert "'Host'" in payload["message"]


async def test_scope_date_must_match_request_date(emu: Emulator, session: aiohttp.ClientSession) -> None:
    """A credential scope dated another day than x-amz-date: 403 InvalidSignatureException."""
    date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    authorization = (
        f"AWS4-HMAC-SHA256 Credential={KEY_ID}/19990101/us-east-1/personalize/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64
    )
    headers = {"Authorization": authorization, "X-Amz-Date": date}
    status, answer, payload = await post_raw(session, emu.endpoint_url + "/items", _body(), headers)
    assert (status, error_code(answer)) == (403, "InvalidSignatureException")
    assert "Date in Credential scope does not match" in payload["message"]


async def test_without_credentials_any_well_formed_signature_passes(session: aiohttp.ClientSession) -> None:
    """credentials=None: unknown keys and wrong secrets pass, but a missing or mis-scoped signature does not."""
    async with Emulator() as emu:
        ok, _, _ = await post_signed(session, emu.endpoint_url, "/items", _body(), key_id="ANY", secret="thing")
        missing, _, _ = await post_raw(session, emu.endpoint_url + "/items", _body())
        scoped, _, _ = await post_signed(session, emu.endpoint_url, "/items", _body(), service="s3")
    assert (ok, missing, scoped) == (200, 403, 403)


def test_verifier_accepts_date_header_instead_of_x_amz_date() -> None:
    """A request dated by the Date header (no x-amz-date) is verified against that date."""
    import hashlib
    import hmac

    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())
    amz = time.strftime("%Y%m%dT%H%M%SZ", time.strptime(date, "%a, %d %b %Y %H:%M:%S GMT"))
    headers = CIMultiDict({"Host": "127.0.0.1:1", "Date": date})
    body = b"{}"
    canonical = "\n".join(
        ["POST", "/events", "", f"date:{date}\nhost:127.0.0.1:1\n", "date;host", hashlib.sha256(body).hexdigest()]
    )
    scope = f"{amz[:8]}/us-east-1/personalize/aws4_request"
    to_sign = f"AWS4-HMAC-SHA256\n{amz}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    key = ("AWS4" + SECRET).encode()
    for part in (amz[:8], "us-east-1", "personalize", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={KEY_ID}/{scope}, SignedHeaders=date;host, Signature={signature}"
    )
    verifier = SignatureVerifier({KEY_ID: SECRET})
    assert verifier.verify("POST", "/events", "", headers, body) == KEY_ID
    with pytest.raises(Refusal) as info:
        verifier.verify("POST", "/events", "", headers, b"{ }")
    assert info.value.code == "InvalidSignatureException"


def test_parse_authorization_reads_every_part() -> None:
    """parse_authorization splits the credential scope, signed headers and signature."""
    auth = parse_authorization(
        "AWS4-HMAC-SHA256 Credential=AKID/20240102/eu-west-1/personalize/aws4_request,"
        "SignedHeaders=content-type;host;x-amz-date,Signature=ABCDEF"
    )
    assert (auth.access_key_id, auth.date, auth.region, auth.service) == (
        "AKID",
        "20240102",
        "eu-west-1",
        "personalize",
    )
    assert auth.signed_headers == ("content-type", "host", "x-amz-date")
    assert auth.signature == "abcdef"
    assert "abcdef" not in repr(auth)


def test_canonical_query_sorts_and_encodes() -> None:
    """The canonical query string is sorted by name and RFC 3986 encoded."""
    assert canonical_query("b=2&a=x y&a=1&c=") == "a=1&a=x%20y&b=2&c="
    assert canonical_query("") == ""


def test_verifier_repr_has_no_secret() -> None:
    """The verifier's repr counts key ids and shows no secret."""
    text = repr(SignatureVerifier({KEY_ID: SECRET}))
    assert SECRET not in text
    assert "1 key id" in text
