"""The Signer: aws-requests-auth's exact headers, botocore's signature, and no change to anybody else's modules."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import pytest
from aws_requests_auth import aws_auth
from aws_requests_auth.aws_auth import AWSRequestsAuth
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from hypothesis import given, settings
from hypothesis import strategies as st

from aiopersonalize_events import _signing
from aiopersonalize_events._credentials import Credentials
from aiopersonalize_events._signing import SIGNING_NAME, Signer

KEY_ID = "AKIDEXAMPLE000000000"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE//////////session+token=="
NOW = 1466287445.25  # 2016-06-18T22:04:05.25Z
HOST = "personalize-events.us-east-1.amazonaws.com"
URL = f"https://{HOST}/events"
BODY_2K = json.dumps(
    {
        "trackingId": "tracking-0000",
        "sessionId": "session-0001",
        "eventList": [
            {"eventType": "click", "itemId": f"item-{k:04d}", "sentAt": 1764115200.25, "properties": '{"a":"b"}' * 12}
            for k in range(10)
        ],
    },
    separators=(",", ":"),
).encode()


class _Request:
    """What aws-requests-auth reads from a request."""

    def __init__(self, url: str, method: str, body: bytes) -> None:
        self.url, self.method, self.body = url, method, body


@contextmanager
def _aws_requests_auth_frozen_at(now: float) -> Iterator[None]:
    """aws-requests-auth's clock (its module's ``datetime.datetime.utcnow``) stopped at ``now`` (test-only patch)."""
    frozen = _dt.datetime.fromtimestamp(now, _dt.timezone.utc).replace(tzinfo=None)

    class _Clock:
        class datetime:
            @staticmethod
            def utcnow() -> _dt.datetime:
                return frozen

    with mock.patch.object(aws_auth, "datetime", _Clock):
        yield


def _theirs(
    host: str, region: str, service: str, method: str, url: str, body: bytes, creds: Credentials, now: float
) -> dict[str, str]:
    with _aws_requests_auth_frozen_at(now):
        headers: dict[str, str] = AWSRequestsAuth("", "", host, region, service).get_aws_request_headers(
            r=_Request(url, method, body),
            aws_access_key=creds.access_key_id,
            aws_secret_access_key=creds.secret_access_key,
            aws_token=creds.session_token,
        )
    return headers


def _assert_same(ours: dict[str, str], theirs: dict[str, str]) -> None:
    assert list(ours.items()) == list(theirs.items())  # same names, values and order
    for name, value in ours.items():
        assert type(name) is str
        assert type(value) is str


CASES = [
    pytest.param(HOST, "us-east-1", SIGNING_NAME, "POST", URL, BODY_2K, None, id="2k-body"),
    pytest.param(HOST, "us-east-1", SIGNING_NAME, "POST", URL, BODY_2K, TOKEN, id="2k-body-token"),
    pytest.param(HOST, "us-east-1", SIGNING_NAME, "POST", URL, b"", None, id="empty-body"),
    pytest.param(HOST, "us-east-1", SIGNING_NAME, "POST", URL, b"{}", TOKEN, id="tiny-body-token"),
    pytest.param(HOST, "us-east-1", SIGNING_NAME, "GET", f"https://{HOST}", b"", None, id="no-path"),
    pytest.param(HOST, "us-east-1", SIGNING_NAME, "POST", URL, "é ü 日本 🎉".encode(), TOKEN, id="utf8-body"),
    pytest.param(HOST, "us-east-1", SIGNING_NAME, "POST", URL, bytes(range(256)), None, id="binary-body"),
    pytest.param("127.0.0.1:8137", "us-east-1", SIGNING_NAME, "POST", "http://127.0.0.1:8137/items", b"{}", None),
    pytest.param("[::1]:9000", "eu-west-1", SIGNING_NAME, "POST", "http://[::1]:9000/users", b"[]", TOKEN),
    pytest.param("localhost:4566", "ap-southeast-2", SIGNING_NAME, "POST", "http://localhost:4566/actions", b"1", None),
    pytest.param(
        "personalize-events.cn-north-1.amazonaws.com.cn",
        "cn-north-1",
        SIGNING_NAME,
        "POST",
        "https://personalize-events.cn-north-1.amazonaws.com.cn/events",
        BODY_2K,
        TOKEN,
        id="china",
    ),
    pytest.param(
        "sts.us-gov-west-1.amazonaws.com",
        "us-gov-west-1",
        "sts",
        "POST",
        "https://sts.us-gov-west-1.amazonaws.com/",
        b"Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fr",
        TOKEN,
        id="sts",
    ),
    pytest.param(HOST, "us-east-1", SIGNING_NAME, "POST", URL + "?b=2&a=1&a=0&flag", b"{}", None, id="query"),
    pytest.param(HOST, "us-east-1", SIGNING_NAME, "POST", URL + "?x=a%20b&=skip&&y=", b"{}", TOKEN, id="query-odd"),
    pytest.param(HOST, "us-east-1", SIGNING_NAME, "POST", f"https://{HOST}/a b/ü~x-_./", b"", None, id="odd-path"),
]


@pytest.mark.parametrize(("host", "region", "service", "method", "url", "body", "token"), CASES)
@pytest.mark.parametrize("now", [NOW, 0.0, 951782400.999, 4102444799.5], ids=["2016", "epoch", "leap-day", "2099"])
def test_headers_are_byte_identical_to_aws_requests_auth(
    host: str, region: str, service: str, method: str, url: str, body: bytes, token: str | None, now: float
) -> None:
    """Signer.headers returns exactly what AWSRequestsAuth.get_aws_request_headers returns at the same instant."""
    creds = Credentials(KEY_ID, SECRET, token)
    ours = Signer(host, region, service, clock=lambda: now).headers(method, url, body, creds)
    _assert_same(ours, _theirs(host, region, service, method, url, body, creds, now))
    expected = {"Authorization", "x-amz-date", "x-amz-content-sha256"} | ({"X-Amz-Security-Token"} if token else set())
    assert set(ours) == expected


_ascii = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=24)
_query = st.lists(
    st.tuples(
        st.from_regex(r"[A-Za-z0-9_.~%-]{0,6}", fullmatch=True), st.from_regex(r"[A-Za-z0-9%-]*", fullmatch=True)
    ),
    max_size=4,
).map(lambda pairs: "&".join(f"{k}={v}" for k, v in pairs))


@settings(max_examples=200, deadline=None)
@given(
    now=st.floats(min_value=0, max_value=4102444799, allow_nan=False).map(lambda t: float(int(t)) + 0.5),
    body=st.binary(max_size=512),
    token=st.none() | _ascii,
    secret=_ascii,
    region=st.sampled_from(["us-east-1", "eu-central-1", "ap-northeast-3", "us-gov-east-1", "cn-northwest-1"]),
    port=st.none() | st.integers(1, 65535),
    path=st.from_regex(r"(/[A-Za-z0-9_.~ -]{0,8}){0,3}", fullmatch=True),
    query=_query,
)
def test_any_request_signs_like_aws_requests_auth(
    now: float, body: bytes, token: str | None, secret: str, region: str, port: int | None, path: str, query: str
) -> None:
    """For generated times, bodies, keys, regions, ports, paths and query strings the headers match exactly."""
    host = "example.com" if port is None else f"example.com:{port}"
    url = f"https://{host}{path}" + (f"?{query}" if query else "")
    creds = Credentials(KEY_ID, secret, token)
    ours = Signer(host, region, clock=lambda: now).headers("POST", url, body, creds)
    _assert_same(ours, _theirs(host, region, SIGNING_NAME, "POST", url, body, creds, now))


def test_the_clock_sets_x_amz_date() -> None:
    """x-amz-date and the credential scope's date come from the injected clock, in UTC, to the second."""
    times = iter([NOW, NOW + 0.5, NOW + 0.7, NOW + 0.75])
    signer = Signer(HOST, "us-east-1", clock=lambda: next(times))
    creds = Credentials(KEY_ID, SECRET)
    signed = [signer.headers("POST", URL, b"{}", creds) for _ in range(4)]
    assert [h["x-amz-date"] for h in signed] == ["20160618T220405Z"] * 3 + ["20160618T220406Z"]
    assert all(
        f"Credential={KEY_ID}/20160618/us-east-1/personalize/aws4_request," in h["Authorization"] for h in signed
    )


def test_the_default_clock_is_the_system_time() -> None:
    """Without a clock argument the signer signs with the current UTC time."""
    before = time.time()
    headers = Signer(HOST, "us-east-1").headers("POST", URL, b"{}", Credentials(KEY_ID, SECRET))
    after = time.time()
    stamps = {time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(t)) for t in (before, after)}
    assert headers["x-amz-date"] in stamps


def test_a_new_day_derives_a_new_key_and_nothing_else_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """The key is derived once per date and secret: again after midnight UTC, again for a new secret, not per call."""
    derived: list[tuple[str, str, str]] = []
    real = aws_auth.getSignatureKey

    def counting(key: str, day: str, region: str, service: str) -> bytes:
        derived.append((day, region, service))
        result: bytes = real(key, day, region, service)
        return result

    monkeypatch.setattr(_signing, "getSignatureKey", counting)
    midnight = 1466294400.0  # 2016-06-19T00:00:00Z
    now = [midnight - 2.0]
    signer = Signer(HOST, "eu-west-1", clock=lambda: now[0])
    creds = Credentials(KEY_ID, SECRET, TOKEN)
    for t in [midnight - 2.0, midnight - 1.0, midnight - 0.001, midnight, midnight + 0.5, midnight + 3600.0]:
        now[0] = t
        for body in (b"", BODY_2K):
            _assert_same(
                signer.headers("POST", URL, body, creds),
                _theirs(HOST, "eu-west-1", SIGNING_NAME, "POST", URL, body, creds, t),
            )
    assert derived == [("20160618", "eu-west-1", "personalize"), ("20160619", "eu-west-1", "personalize")]

    rotated = Credentials(KEY_ID, SECRET + "rotated", TOKEN)
    _assert_same(
        signer.headers("POST", URL, b"{}", rotated),
        _theirs(HOST, "eu-west-1", SIGNING_NAME, "POST", URL, b"{}", rotated, now[0]),
    )
    signer.headers("POST", URL, b"{}", rotated)
    assert len(derived) == 3


def test_canonical_path_and_query_are_computed_once_per_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """aws-requests-auth's canonical path/query methods run once per URL, and the per-signer memory stays small."""
    seen: list[str] = []
    path_of = AWSRequestsAuth.get_canonical_path
    query_of = AWSRequestsAuth.get_canonical_querystring

    def path(cls: type, r: Any) -> str:
        seen.append(r.url)
        result: str = path_of(r)
        return result

    def query(cls: type, r: Any) -> str:
        result: str = query_of(r)
        return result

    monkeypatch.setattr(AWSRequestsAuth, "get_canonical_path", classmethod(path))
    monkeypatch.setattr(AWSRequestsAuth, "get_canonical_querystring", classmethod(query))
    signer = Signer(HOST, "us-east-1", clock=lambda: NOW)
    creds = Credentials(KEY_ID, SECRET)
    for _ in range(5):
        for url in (URL, f"https://{HOST}/items"):
            signer.headers("POST", url, b"{}", creds)
    assert seen == [URL, f"https://{HOST}/items"]

    urls = [f"https://{HOST}/p{k}?q={k}" for k in range(100)]
    for url in urls:
        _assert_same(
            signer.headers("POST", url, b"{}", creds),
            _theirs(HOST, "us-east-1", SIGNING_NAME, "POST", url, b"{}", creds, NOW),
        )
    assert len(signer._urls) <= 16  # bounded, whatever the number of URLs


def _botocore_authorization(host: str, region: str, service: str, url: str, body: bytes, creds: Credentials) -> str:
    request = AWSRequest(method="POST", url=url, data=body, headers={"host": host})
    frozen = _dt.datetime.fromtimestamp(NOW, _dt.timezone.utc).replace(tzinfo=None)
    with mock.patch("botocore.auth.get_current_datetime", return_value=frozen):
        SigV4Auth(
            BotoCredentials(creds.access_key_id, creds.secret_access_key, creds.session_token), service, region
        ).add_auth(request)
    assert request.headers["X-Amz-Date"] == "20160618T220405Z"
    authorization: str = request.headers["Authorization"]
    return authorization


@pytest.mark.parametrize("token", [None, TOKEN])
@pytest.mark.parametrize(
    ("host", "region", "service", "url"),
    [
        (HOST, "us-east-1", SIGNING_NAME, URL),
        ("127.0.0.1:8137", "us-west-2", SIGNING_NAME, "http://127.0.0.1:8137/action-interactions"),
        ("sts.amazonaws.com", "us-east-1", "sts", "https://sts.amazonaws.com/"),
        (HOST, "us-east-1", SIGNING_NAME, URL + "?b=2&a=1"),
    ],
)
def test_botocore_sigv4_signs_the_same(host: str, region: str, service: str, url: str, token: str | None) -> None:
    """botocore's SigV4Auth, given the same request and instant, writes the same Authorization header."""
    creds = Credentials(KEY_ID, SECRET, token)
    ours = Signer(host, region, service, clock=lambda: NOW).headers("POST", url, BODY_2K, creds)
    assert ours["Authorization"] == _botocore_authorization(host, region, service, url, BODY_2K, creds)
    assert ours["x-amz-content-sha256"] == hashlib.sha256(BODY_2K).hexdigest()


def test_botocore_rejects_a_changed_body_or_secret() -> None:
    """The comparison with botocore is not vacuous: another body or secret gives another signature."""
    creds = Credentials(KEY_ID, SECRET, TOKEN)
    ours = Signer(HOST, "us-east-1", clock=lambda: NOW).headers("POST", URL, BODY_2K, creds)
    assert ours["Authorization"] != _botocore_authorization(HOST, "us-east-1", SIGNING_NAME, URL, BODY_2K + b" ", creds)
    other = Credentials(KEY_ID, SECRET + "x", TOKEN)
    assert ours["Authorization"] != _botocore_authorization(HOST, "us-east-1", SIGNING_NAME, URL, BODY_2K, other)


def test_aws_requests_auth_module_is_left_alone() -> None:
    """Importing and using the signer replaces nothing in aws_requests_auth.aws_auth (in a fresh interpreter)."""
    script = """
import aws_requests_auth.aws_auth as a
before = dict(vars(a))
from aiopersonalize_events._credentials import Credentials
from aiopersonalize_events._signing import Signer
s = Signer("example.com", "us-east-1")
for token in (None, "t"):
    for _ in range(3):
        s.headers("POST", "https://example.com/events", b"{}", Credentials("AKID", "secret", token))
after = vars(a)
assert after.keys() == before.keys(), sorted(after.keys() ^ before.keys())
changed = [name for name in before if after[name] is not before[name]]
assert not changed, changed
assert not hasattr(a.getSignatureKey, "cache_info") and not hasattr(a.getSignatureKey, "__wrapped__")
assert a.getSignatureKey.__module__ == "aws_requests_auth.aws_auth"
"""
    done = subprocess.run([sys.executable, "-W", "error", "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_getsignaturekey_is_not_replaced_in_this_process() -> None:
    """In the test process too, aws-requests-auth's getSignatureKey is its own plain function."""
    Signer(HOST, "us-east-1").headers("POST", URL, b"{}", Credentials(KEY_ID, SECRET))
    derive = aws_auth.getSignatureKey
    assert derive.__module__ == "aws_requests_auth.aws_auth"
    assert derive.__code__.co_filename == aws_auth.__file__
    assert not hasattr(derive, "cache_info")
    assert vars(_signing)["getSignatureKey"] is derive


def test_signing_raises_no_deprecation_warning_and_touches_no_filters() -> None:
    """No warning is emitted, utcnow is never called, and no warnings filter is changed per call."""

    class _NoUtcnow:
        class datetime:
            @staticmethod
            def utcnow() -> _dt.datetime:
                raise AssertionError("datetime.utcnow() called")

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("warnings filters changed while signing")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        filters = list(warnings.filters)
        with (
            mock.patch.object(aws_auth, "datetime", _NoUtcnow),
            mock.patch.multiple(
                warnings, catch_warnings=refuse, simplefilter=refuse, filterwarnings=refuse, resetwarnings=refuse
            ),
        ):
            signer = Signer(HOST, "us-east-1")
            for token in (None, TOKEN, None):
                headers = signer.headers("POST", URL, BODY_2K, Credentials(KEY_ID, SECRET, token))
                assert headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=")
        assert warnings.filters == filters
    assert [str(w.message) for w in caught] == []


def test_repr_shows_no_secret() -> None:
    """The signer's repr names the host, region and service, never a secret key, token or derived key."""
    signer = Signer(HOST, "us-east-1", clock=lambda: NOW)
    creds = Credentials(KEY_ID, SECRET, TOKEN)
    signer.headers("POST", URL, BODY_2K, creds)
    key = aws_auth.getSignatureKey(SECRET, "20160618", "us-east-1", SIGNING_NAME)
    text = repr(signer) + str(signer)
    assert text.startswith(f"Signer(host={HOST!r}, region='us-east-1', service='personalize')")
    for secret in (SECRET, TOKEN, key.hex(), repr(key), SECRET[:8], TOKEN[:12]):
        assert secret not in text
    assert not hasattr(signer, "__dict__")  # nothing beyond the declared slots


def test_service_is_positional_and_defaults_to_personalize() -> None:
    """Signer(host, region) signs for 'personalize'; Signer(host, region, 'sts') for STS."""
    creds = Credentials(KEY_ID, SECRET)
    default = Signer(HOST, "us-east-1", clock=lambda: NOW).headers("POST", URL, b"", creds)
    sts = Signer("sts.amazonaws.com", "us-east-1", "sts", clock=lambda: NOW).headers(
        "POST", "https://sts.amazonaws.com/", b"", creds
    )
    assert "/us-east-1/personalize/aws4_request," in default["Authorization"]
    assert "/us-east-1/sts/aws4_request," in sts["Authorization"]
