"""The emulator's SigV4 check: the service's answers to missing, malformed, mis-scoped, stale and wrong signatures.

Its canonicalisation and signature computation are checked against vectors of
the AWS SigV4 test suite, its acceptance against botocore's signer.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
import yarl
from _emulator_support import KEY_ID, SECRET, error_code, post_raw, post_signed, sign, valid
from multidict import CIMultiDict

from aiopersonalize_events.emulator import Emulator
from aiopersonalize_events.emulator._answers import Refusal
from aiopersonalize_events.emulator._sigv4 import (
    SignatureVerifier,
    canonical_query,
    canonical_request,
    canonical_uri,
    normalize_path,
    parse_authorization,
)


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


# -- the AWS SigV4 test suite ----------------------------------------------------------------------------------
# Vectors of the AWS Signature Version 4 test suite (aws-sig-v4-test-suite, as botocore's
# tests/unit/auth/aws4_testsuite carries it): the request as the signer saw it, the canonical request it
# builds and the signature it gives. Every vector signs for service "service" in us-east-1 at
# 20150830T123600Z with the suite's example key pair.

SUITE_KEY_ID = "AKIDEXAMPLE"
SUITE_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SUITE_DATE = "20150830T123600Z"
SUITE_SCOPE = "20150830/us-east-1/service/aws4_request"
SUITE_CLOCK = 1440938160.0  # 2015-08-30T12:36:00Z
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
_PLAIN_HEADERS = f"host:example.amazonaws.com\nx-amz-date:{SUITE_DATE}\n\nhost;x-amz-date\n{EMPTY_SHA256}"
_SUITE_TOKEN = (
    "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8Y"
    "UuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE"
    "8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2"
    "ICCR/oLxBA=="
)


@dataclasses.dataclass(frozen=True)
class SuiteVector:
    """One vector: the request (headers beside Host and X-Amz-Date), its canonical request and signature."""

    name: str
    method: str
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    canonical: str
    signature: str


_NORMALIZE_PATH = [
    SuiteVector(
        "get-relative",
        "GET",
        "/example/..",
        "",
        (),
        b"",
        f"GET\n/\n\n{_PLAIN_HEADERS}",
        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    ),
    SuiteVector(
        "get-relative-relative",
        "GET",
        "/example1/example2/../..",
        "",
        (),
        b"",
        f"GET\n/\n\n{_PLAIN_HEADERS}",
        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    ),
    SuiteVector(
        "get-slash",
        "GET",
        "//",
        "",
        (),
        b"",
        f"GET\n/\n\n{_PLAIN_HEADERS}",
        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    ),
    SuiteVector(
        "get-slash-dot-slash",
        "GET",
        "/./",
        "",
        (),
        b"",
        f"GET\n/\n\n{_PLAIN_HEADERS}",
        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    ),
    SuiteVector(
        "get-slash-pointless-dot",
        "GET",
        "/./example",
        "",
        (),
        b"",
        f"GET\n/example\n\n{_PLAIN_HEADERS}",
        "ef75d96142cf21edca26f06005da7988e4f8dc83a165a80865db7089db637ec5",
    ),
    SuiteVector(
        "get-slashes",
        "GET",
        "//example//",
        "",
        (),
        b"",
        f"GET\n/example/\n\n{_PLAIN_HEADERS}",
        "9a624bd73a37c9a373b5312afbebe7a714a789de108f0bdfe846570885f57e84",
    ),
    SuiteVector(
        "get-space",
        "GET",
        "/example space/",
        "",
        (),
        b"",
        f"GET\n/example%20space/\n\n{_PLAIN_HEADERS}",
        "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741",
    ),
]

_BASIC = [
    SuiteVector(
        "get-vanilla",
        "GET",
        "/",
        "",
        (),
        b"",
        f"GET\n/\n\n{_PLAIN_HEADERS}",
        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    ),
    SuiteVector(
        "get-unreserved",
        "GET",
        "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        "",
        (),
        b"",
        f"GET\n/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz\n\n{_PLAIN_HEADERS}",
        "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f",
    ),
    SuiteVector(
        "get-utf8",
        "GET",
        "/\u1234",
        "",
        (),
        b"",
        f"GET\n/%E1%88%B4\n\n{_PLAIN_HEADERS}",
        "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85",
    ),
    SuiteVector(
        "get-vanilla-query-order-key",
        "GET",
        "/",
        "Param1=value2&Param1=Value1",
        (),
        b"",
        f"GET\n/\nParam1=Value1&Param1=value2\n{_PLAIN_HEADERS}",
        "eedbc4e291e521cf13422ffca22be7d2eb8146eecf653089df300a15b2382bd1",
    ),
    SuiteVector(
        "get-vanilla-utf8-query",
        "GET",
        "/",
        "\u1234=bar",
        (),
        b"",
        f"GET\n/\n%E1%88%B4=bar\n{_PLAIN_HEADERS}",
        "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04",
    ),
    SuiteVector(
        "get-header-key-duplicate",
        "GET",
        "/",
        "",
        (("My-Header1", "value2"), ("My-Header1", "value2"), ("My-Header1", "value1")),
        b"",
        "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value2,value2,value1\nx-amz-date:20150830T123600Z\n\n"
        f"host;my-header1;x-amz-date\n{EMPTY_SHA256}",
        "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea",
    ),
    SuiteVector(
        "get-header-value-trim",
        "GET",
        "/",
        "",
        (("My-Header1", " value1"), ("My-Header2", ' "a   b   c"')),
        b"",
        'GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\nmy-header2:"a b c"\nx-amz-date:20150830T123600Z\n\n'
        f"host;my-header1;my-header2;x-amz-date\n{EMPTY_SHA256}",
        "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
    ),
    SuiteVector(
        "post-vanilla",
        "POST",
        "/",
        "",
        (),
        b"",
        f"POST\n/\n\n{_PLAIN_HEADERS}",
        "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
    ),
    SuiteVector(
        "post-x-www-form-urlencoded",
        "POST",
        "/",
        "",
        (("Content-Type", "application/x-www-form-urlencoded"),),
        b"Param1=value1",
        "POST\n/\n\ncontent-type:application/x-www-form-urlencoded\nhost:example.amazonaws.com\n"
        "x-amz-date:20150830T123600Z\n\ncontent-type;host;x-amz-date\n"
        "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
        "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
    ),
    SuiteVector(
        "post-sts-header-before",
        "POST",
        "/",
        "",
        (("X-Amz-Security-Token", _SUITE_TOKEN),),
        b"",
        "POST\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n"
        f"x-amz-security-token:{_SUITE_TOKEN}\n\nhost;x-amz-date;x-amz-security-token\n{EMPTY_SHA256}",
        "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead",
    ),
]

SUITE = _NORMALIZE_PATH + _BASIC


def _suite_headers(vector: SuiteVector) -> CIMultiDict[str]:
    headers: CIMultiDict[str] = CIMultiDict([("Host", "example.amazonaws.com"), ("X-Amz-Date", SUITE_DATE)])
    for name, value in vector.headers:
        headers.add(name, value)
    return headers


def _suite_signed(vector: SuiteVector) -> list[str]:
    return sorted({name.lower() for name in _suite_headers(vector)})


def _suite_verifier() -> SignatureVerifier:
    return SignatureVerifier({SUITE_KEY_ID: SUITE_SECRET}, service="service", wall_clock=lambda: SUITE_CLOCK)


def _suite_request(vector: SuiteVector, signature: str) -> CIMultiDict[str]:
    headers = _suite_headers(vector)
    headers["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={SUITE_KEY_ID}/{SUITE_SCOPE}, "
        f"SignedHeaders={';'.join(_suite_signed(vector))}, Signature={signature}"
    )
    return headers


def test_suite_normalize_path_vectors_are_the_six_of_the_suite() -> None:
    """The normalize-path group holds the suite's six path vectors (and get-space), none left out."""
    names = {v.name for v in _NORMALIZE_PATH}
    assert names >= {
        "get-relative",
        "get-relative-relative",
        "get-slash",
        "get-slash-dot-slash",
        "get-slash-pointless-dot",
        "get-slashes",
    }


@pytest.mark.parametrize("vector", SUITE, ids=lambda v: v.name)
def test_suite_canonical_request(vector: SuiteVector) -> None:
    """The emulator builds each suite vector's canonical request exactly (path normalised and encoded)."""
    payload_hash = hashlib.sha256(vector.body).hexdigest()
    built = canonical_request(
        vector.method, vector.path, vector.query, _suite_headers(vector), _suite_signed(vector), payload_hash
    )
    assert built == vector.canonical


@pytest.mark.parametrize("vector", SUITE, ids=lambda v: v.name)
def test_suite_signature_verifies(vector: SuiteVector) -> None:
    """The emulator's verifier accepts each suite vector's signature, and refuses it one hex digit off."""
    verifier = _suite_verifier()
    headers = _suite_request(vector, vector.signature)
    assert verifier.verify(vector.method, vector.path, vector.query, headers, vector.body) == SUITE_KEY_ID
    wrong = vector.signature[:-1] + ("0" if vector.signature[-1] != "0" else "1")
    with pytest.raises(Refusal) as info:
        verifier.verify(vector.method, vector.path, vector.query, _suite_request(vector, wrong), vector.body)
    assert (info.value.status, info.value.code) == (403, "InvalidSignatureException")


@pytest.mark.parametrize(
    ("path", "normalized"),
    [
        ("", "/"),
        ("/", "/"),
        ("/events", "/events"),
        ("/a/b/../c/./d", "/a/c/d"),
        ("/..", "/"),
        ("/../../a", "/a"),
        ("/a/..", "/"),
        ("/a/../", "/"),
        ("/a/.", "/a"),
        ("/a//b///", "/a/b/"),
        ("/.../a", "/.../a"),
        ("/a/.b/..c", "/a/.b/..c"),
        ("/%2E%2E/a", "/%2E%2E/a"),
    ],
)
def test_normalize_path_follows_the_sdks(path: str, normalized: str) -> None:
    """Dot segments and repeated slashes go as the SDKs' signers remove them; '...', '.b' and '%2E%2E' stay."""
    assert normalize_path(path) == normalized


@pytest.mark.parametrize(
    ("raw_path", "canonical"),
    [
        ("/events", "/events"),
        ("/%65vents", "/%2565vents"),
        ("/a%20b/c+d", "/a%2520b/c%2Bd"),
        ("/a%2Fb", "/a%252Fb"),
        ("/\udcff", "/%FF"),
    ],
)
def test_canonical_uri_encodes_the_wire_path_again(raw_path: str, canonical: str) -> None:
    """The path as it arrived is encoded once more (not S3, so double encoding); undecodable bytes stay bytes."""
    assert canonical_uri(raw_path) == canonical


async def test_percent_encoded_path_signed_by_botocore_is_accepted(
    emu: Emulator, session: aiohttp.ClientSession
) -> None:
    """A request to /%69tems (routed to /items) verifies as botocore signs it: the raw path encoded again."""
    url = emu.endpoint_url + "/%69tems"
    body = _body()
    async with session.post(yarl.URL(url, encoded=True), data=body, headers=sign(url, body)) as response:
        assert response.status == 200
    assert len(emu.items()) == 1


# -- a well-formed request even when signatures are not verified ------------------------------------------------


def _authorization(date: str, signed: str = "host;x-amz-date", signature: str = "0" * 64) -> str:
    return (
        f"AWS4-HMAC-SHA256 Credential={KEY_ID}/{date[:8]}/us-east-1/personalize/aws4_request, "
        f"SignedHeaders={signed}, Signature={signature}"
    )


_BAD_AMZ_DATES = [
    "20241301T000000Z",  # month 13
    "20240230T120000Z",  # February 30
    "20240101T250000Z",  # hour 25
    "20240101T006000Z",  # minute 60
    "20240101T000060Z",  # second 60
    "00000101T000000Z",  # year 0
    "20240101T000000",
    "20240101000000Z",
    "2024-01-01T00:00:00Z",
    "20240101T000000Z,20240101T000000Z",  # the header sent twice
]


@pytest.mark.parametrize("credentials", [None, {KEY_ID: SECRET}], ids=["any-signature", "verifying"])
@pytest.mark.parametrize("amz_date", _BAD_AMZ_DATES)
async def test_malformed_x_amz_date_is_refused_in_both_modes(
    session: aiohttp.ClientSession, credentials: dict[str, str] | None, amz_date: str
) -> None:
    """An X-Amz-Date that is no real date in ISO-8601 basic format: 400 IncompleteSignatureException, nothing stored."""
    async with Emulator(credentials=credentials) as emu:
        headers: list[tuple[str, str]] = [("Authorization", _authorization(amz_date))]
        headers += [("X-Amz-Date", part) for part in amz_date.split(",")]
        async with session.post(emu.endpoint_url + "/items", data=_body(), headers=headers) as response:
            payload = await response.json(content_type=None)
            answer = dict(response.headers)
        assert (response.status, error_code(answer)) == (400, "IncompleteSignatureException")
        assert "ISO-8601 'basic format'" in payload["message"]
        assert emu.items() == []


@pytest.mark.parametrize(
    "amz_date",
    [
        "\uff12\uff10\uff12\uff14\uff10\uff11\uff10\uff11T000000Z",
        "\u0662\u0660\u0662\u0664\u0660\u0661\u0660\u0661T000000Z",
    ],
    ids=["fullwidth-digits", "arabic-indic-digits"],
)
def test_x_amz_date_digits_must_be_ascii(amz_date: str) -> None:
    """Digits of other scripts (which a regex's \\d takes) do not make an X-Amz-Date, even without credentials."""
    headers = CIMultiDict({"Host": "h", "X-Amz-Date": amz_date, "Authorization": _authorization("20240101T000000Z")})
    with pytest.raises(Refusal) as info:
        SignatureVerifier(None).verify("POST", "/items", "", headers, b"{}")
    assert (info.value.status, info.value.code) == (400, "IncompleteSignatureException")


@pytest.mark.parametrize(
    "date",
    ["yesterday", "Mon, 32 Jan 2024 00:00:00 GMT", "Mon, 01 Jan 2024 25:00:00 GMT", "Tue, 01 Jan 0999 00:00:00 GMT"],
)
def test_malformed_date_header_is_refused_without_credentials(date: str) -> None:
    """Without X-Amz-Date, a Date header that is no RFC 1123 date: 400 IncompleteSignatureException."""
    headers = CIMultiDict({"Host": "h", "Date": date, "Authorization": _authorization("09990101T000000Z", "date;host")})
    with pytest.raises(Refusal) as info:
        SignatureVerifier(None).verify("POST", "/items", "", headers, b"{}")
    assert (info.value.status, info.value.code) == (400, "IncompleteSignatureException")
    assert "RFC 1123" in info.value.message


@pytest.mark.parametrize(
    ("signed", "signature"),
    [
        ("host;x-amz-date", "0" * 63),
        ("host;x-amz-date", "0" * 65),
        ("host;x-amz-date", "z" * 64),
        ("host;x-amz-date", "00"),
        ("host;;x-amz-date", "0" * 64),
        ("host;x amz date", "0" * 64),
        ("host;x-amz-date;", "0" * 64),
    ],
    ids=[
        "short-signature",
        "long-signature",
        "non-hex-signature",
        "two-digit-signature",
        "empty-header",
        "spaces",
        "trailing-semicolon",
    ],
)
async def test_malformed_signature_parts_are_refused_without_credentials(
    session: aiohttp.ClientSession, signed: str, signature: str
) -> None:
    """credentials=None still wants 64 hex digits of signature and real header names: 403 InvalidSignatureException."""
    date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    headers = {"Authorization": _authorization(date, signed, signature), "X-Amz-Date": date}
    async with Emulator() as emu:
        status, answer, _ = await post_raw(session, emu.endpoint_url + "/items", _body(), headers)
        assert (status, error_code(answer)) == (403, "InvalidSignatureException")
        assert emu.items() == []


def test_non_ascii_signature_is_an_invalid_signature_not_a_failure() -> None:
    """A signature with non-ASCII characters, when verifying, is a 403 InvalidSignatureException (not a 500)."""
    date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    headers = CIMultiDict(
        {"Host": "h", "X-Amz-Date": date, "Authorization": _authorization(date, signature="\u00e9" * 64)}
    )
    with pytest.raises(Refusal) as info:
        SignatureVerifier({KEY_ID: SECRET}).verify("POST", "/items", "", headers, b"{}")
    assert (info.value.status, info.value.code) == (403, "InvalidSignatureException")
