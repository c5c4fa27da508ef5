"""Helpers shared by the emulator's tests (no tests here): valid requests, boto3 set-up, raw signed calls.

Raw requests are signed with botocore's own SigV4 signer, a third
implementation beside the client's and the emulator's.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Final

import aiohttp
import boto3  # type: ignore[import-untyped]
import botocore.config  # type: ignore[import-untyped]
import pytest
from botocore.auth import SigV4Auth  # type: ignore[import-untyped]
from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]
from botocore.credentials import Credentials as BotoCredentials  # type: ignore[import-untyped]

from aiopersonalize_events._operations import BY_NAME

KEY_ID: Final = "AKIDTEST"
SECRET: Final = "test-secret"
REGION: Final = "us-east-1"
TRACKING_ID: Final = "tracker-1"
ITEMS_ARN: Final = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/ITEMS"
USERS_ARN: Final = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/USERS"
ACTIONS_ARN: Final = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/ACTIONS"

VALID: Final[dict[str, dict[str, Any]]] = {
    "PutEvents": {
        "trackingId": TRACKING_ID,
        "sessionId": "session-1",
        "userId": "user-1",
        "eventList": [
            {
                "eventId": "event-1",
                "eventType": "click",
                "eventValue": 4.5,
                "itemId": "item-1",
                "properties": '{"numberOfRatings":"12"}',
                "sentAt": 1700000000.25,
                "recommendationId": "rec-1",
                "impression": ["item-1", "item-2"],
                "metricAttribution": {"eventAttributionSource": "email campaign"},
            }
        ],
    },
    "PutItems": {"datasetArn": ITEMS_ARN, "items": [{"itemId": "item-1", "properties": '{"genre":"Horror|Action"}'}]},
    "PutUsers": {"datasetArn": USERS_ARN, "users": [{"userId": "user-1", "properties": '{"tier":"gold"}'}]},
    "PutActions": {"datasetArn": ACTIONS_ARN, "actions": [{"actionId": "action-1", "properties": '{"value":"100"}'}]},
    "PutActionInteractions": {
        "trackingId": TRACKING_ID,
        "actionInteractions": [
            {
                "actionId": "action-1",
                "userId": "user-1",
                "sessionId": "session-1",
                "timestamp": 1700000000,
                "eventType": "Taken",
                "eventId": "interaction-1",
                "recommendationId": "rec-1",
                "impression": ["action-1"],
                "properties": '{"numberOfActions":"12"}',
            }
        ],
    },
}
"""One valid request per operation, in wire form (also boto3's parameter names)."""

ACCESSORS: Final = {
    "PutEvents": "events",
    "PutItems": "items",
    "PutUsers": "users",
    "PutActions": "actions",
    "PutActionInteractions": "action_interactions",
}
"""The Emulator method returning each operation's records."""


def valid(operation: str) -> dict[str, Any]:
    """A fresh deep copy of the valid request of ``operation``."""
    return copy.deepcopy(VALID[operation])


def isolate_aws_environment(mp: pytest.MonkeyPatch, tmp: str) -> None:
    """Keep boto3 off the network and away from the user's AWS files: no metadata service, no proxies."""
    mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
    mp.setenv("AWS_CONFIG_FILE", f"{tmp}/aws-config-absent")
    mp.setenv("AWS_SHARED_CREDENTIALS_FILE", f"{tmp}/aws-credentials-absent")
    mp.setenv("NO_PROXY", "127.0.0.1,localhost")
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_PERSONALIZE_EVENTS",
    ):
        mp.delenv(name, raising=False)


def boto_client(endpoint_url: str, key_id: str = KEY_ID, secret: str = SECRET) -> Any:
    """A boto3 personalize-events client for the emulator: no client-side validation, no retries."""
    session = boto3.session.Session(aws_access_key_id=key_id, aws_secret_access_key=secret, region_name=REGION)
    config = botocore.config.Config(
        parameter_validation=False, retries={"total_max_attempts": 1, "mode": "standard"}, proxies={}
    )
    return session.client("personalize-events", endpoint_url=endpoint_url, config=config)


def boto_method(client: Any, operation: str) -> Any:
    """The boto3 method of ``operation`` (``PutEvents`` -> ``put_events``)."""
    return getattr(client, BY_NAME[operation].snake_name)


def sign(
    url: str,
    body: bytes,
    *,
    key_id: str = KEY_ID,
    secret: str = SECRET,
    region: str = REGION,
    service: str = "personalize",
    token: str | None = None,
) -> dict[str, str]:
    """Headers for a POST of ``body`` to ``url``, signed by botocore's SigV4 signer."""
    request = AWSRequest(method="POST", url=url, data=body, headers={"Content-Type": "application/json"})
    SigV4Auth(BotoCredentials(key_id, secret, token), service, region).add_auth(request)
    return dict(request.headers.items())


async def post_raw(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], dict[str, Any]]:
    """POST ``body`` to ``url``; return status, headers and the JSON body of the answer."""
    async with session.post(url, data=body, headers=headers or {}) as response:
        payload = await response.read()
        return response.status, dict(response.headers), json.loads(payload) if payload else {}


async def post_signed(
    session: aiohttp.ClientSession, endpoint_url: str, path: str, document: object, **sign_options: Any
) -> tuple[int, dict[str, str], dict[str, Any]]:
    """POST ``document`` (JSON-encoded unless bytes) to ``path``, signed; return status, headers, JSON body."""
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    url = endpoint_url + path
    return await post_raw(session, url, body, sign(url, body, **sign_options))


def error_code(headers: dict[str, str]) -> str:
    """The error code of an answer, as clients read it from ``x-amzn-ErrorType``."""
    return headers.get("x-amzn-ErrorType", "").split(":", 1)[0]
