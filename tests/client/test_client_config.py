"""Configuration as boto3 users expect: endpoint variables and profiles, retry variables."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from aiopersonalize_events import (
    ClientConfig,
    Credentials,
    Item,
    PersonalizeEventsClient,
    ThrottlingException,
    ValidationError,
)
from aiopersonalize_events._endpoints import configured_endpoint
from aiopersonalize_events.emulator import Emulator, Faults

ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/ITEMS"
CLOSED = "http://127.0.0.1:9"  # nothing listens on the discard port: a client sent there fails
SEND = f"""
import asyncio, sys
from aiopersonalize_events import Item, PersonalizeEventsClient

async def main():
    explicit = sys.argv[1] if len(sys.argv) > 1 else None
    async with PersonalizeEventsClient(endpoint_url=explicit) as client:
        await client.put_items(dataset_arn="{ARN}", items=[Item(item_id="sent-by-child")])
        print(client.endpoint_url)

asyncio.run(main())
"""


async def _send_from_subprocess(environ: dict[str, str], *args: str) -> tuple[int, str, str]:
    """Run SEND in a fresh interpreter with only ``environ``'s AWS settings (keys and region included)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_ACCESS_KEY_ID": "AKIDCHILD", "AWS_SECRET_ACCESS_KEY": "child-secret", "AWS_REGION": "us-east-1"})
    env.update({"AWS_EC2_METADATA_DISABLED": "true", "AWS_MAX_ATTEMPTS": "1"})
    env.update(environ)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-W",
        "error",
        "-c",
        SEND,
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def _config_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config"
    path.write_text(text, encoding="utf-8")
    return str(path)


# --- endpoints, against the emulator, from a subprocess -----------------------------------------------------------


async def test_service_endpoint_variable_wins_over_the_global_one(emulator: Emulator) -> None:
    """AWS_ENDPOINT_URL_PERSONALIZE_EVENTS is used before AWS_ENDPOINT_URL (which points nowhere here)."""
    status, out, err = await _send_from_subprocess(
        {"AWS_ENDPOINT_URL_PERSONALIZE_EVENTS": emulator.endpoint_url, "AWS_ENDPOINT_URL": CLOSED}
    )
    assert status == 0, err
    assert out.strip() == emulator.endpoint_url
    assert [item["itemId"] for item in emulator.items(ARN)] == ["sent-by-child"]


async def test_global_endpoint_variable_is_used_alone(emulator: Emulator) -> None:
    """AWS_ENDPOINT_URL alone sends there (with a trailing slash, as people write it)."""
    status, _, err = await _send_from_subprocess({"AWS_ENDPOINT_URL": emulator.endpoint_url + "/"})
    assert status == 0, err
    assert len(emulator.items(ARN)) == 1


async def test_endpoint_url_argument_wins_over_both_variables(emulator: Emulator) -> None:
    """endpoint_url= wins over both variables."""
    environ = {"AWS_ENDPOINT_URL_PERSONALIZE_EVENTS": CLOSED, "AWS_ENDPOINT_URL": CLOSED}
    status, _, err = await _send_from_subprocess(environ, emulator.endpoint_url)
    assert status == 0, err
    assert len(emulator.items(ARN)) == 1


async def test_profile_services_section_then_profile_endpoint(emulator: Emulator, tmp_path: Path) -> None:
    """The profile's services section wins over its own endpoint_url; the environment wins over both."""
    config = _config_file(
        tmp_path,
        "[profile shop]\n"
        "services = local\n"
        f"endpoint_url = {CLOSED}\n"
        "[services local]\n"
        "personalize_events =\n"
        f"  endpoint_url = {emulator.endpoint_url}\n"
        "[profile other]\n"
        f"endpoint_url = {emulator.endpoint_url}\n",
    )
    status, _, err = await _send_from_subprocess({"AWS_CONFIG_FILE": config, "AWS_PROFILE": "shop"})
    assert status == 0, err
    status, _, err = await _send_from_subprocess({"AWS_CONFIG_FILE": config, "AWS_PROFILE": "other"})
    assert status == 0, err
    assert emulator.calls[("PutItems", 200)] == 2
    status, _, err = await _send_from_subprocess(
        {"AWS_CONFIG_FILE": config, "AWS_PROFILE": "other", "AWS_ENDPOINT_URL": CLOSED}
    )
    assert status != 0
    assert "EndpointConnectionError" in err


async def test_a_malformed_endpoint_variable_is_named(emulator: Emulator) -> None:
    """A malformed AWS_ENDPOINT_URL_PERSONALIZE_EVENTS is a ValidationError naming the variable, nothing is sent."""
    status, _, err = await _send_from_subprocess({"AWS_ENDPOINT_URL_PERSONALIZE_EVENTS": "127.0.0.1:4566"})
    assert status != 0
    assert "ValidationError: AWS_ENDPOINT_URL_PERSONALIZE_EVENTS: must be an http:// or https:// URL" in err
    assert emulator.calls == {}


# --- endpoints, the order in detail (no I/O but the config file) ---------------------------------------------------


async def test_configured_endpoint_order_and_the_ignore_switch(tmp_path: Path) -> None:
    """Service variable, global variable, services section, profile; AWS_IGNORE_CONFIGURED_ENDPOINT_URLS: none."""
    config = _config_file(
        tmp_path,
        "[default]\nservices = s\nendpoint_url = http://profile.test\n"
        "[services s]\npersonalize_events =\n  endpoint_url = http://service-section.test/\n"
        "  region = eu-west-1\ns3 =\n  endpoint_url = http://s3.test\n"
        "[profile plain]\nendpoint_url = http://plain.test\n"
        "[profile off]\nendpoint_url = http://off.test\nignore_configured_endpoint_urls = true\n",
    )
    base = {"AWS_CONFIG_FILE": config}
    both = {**base, "AWS_ENDPOINT_URL_PERSONALIZE_EVENTS": "http://service.test", "AWS_ENDPOINT_URL": "http://all.test"}
    assert await configured_endpoint(None, both) == "http://service.test"
    assert await configured_endpoint(None, {**base, "AWS_ENDPOINT_URL": "http://all.test"}) == "http://all.test"
    assert await configured_endpoint(None, base) == "http://service-section.test"
    assert await configured_endpoint("plain", base) == "http://plain.test"
    assert await configured_endpoint(None, {**base, "AWS_PROFILE": "plain"}) == "http://plain.test"
    assert await configured_endpoint("off", base) is None
    assert await configured_endpoint(None, {**both, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "TRUE"}) is None
    assert await configured_endpoint(None, {"AWS_CONFIG_FILE": str(tmp_path / "missing")}) is None


async def test_the_ignore_switch_gives_the_regions_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    """With AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true the client opens on the region's AWS endpoint."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", CLOSED)
    monkeypatch.setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")
    async with PersonalizeEventsClient(region="eu-west-1", credentials=Credentials("AKID", "s")) as client:
        assert client.endpoint_url == "https://personalize-events.eu-west-1.amazonaws.com"


async def test_a_broken_config_file_does_not_stop_an_environment_configured_client(tmp_path: Path) -> None:
    """A config file that cannot be parsed is passed over for the endpoint (as before, when it was never read)."""
    broken = _config_file(tmp_path, "endpoint_url = http://before-any-section.test\n")
    assert await configured_endpoint(None, {"AWS_CONFIG_FILE": broken}) is None


# --- AWS_MAX_ATTEMPTS and AWS_RETRY_MODE ----------------------------------------------------------------------------


def test_max_attempts_and_retry_mode_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """ClientConfig() takes AWS_MAX_ATTEMPTS and AWS_RETRY_MODE; an argument wins; without them, 3 and standard."""
    assert (ClientConfig().max_attempts, ClientConfig().retry_mode) == (3, "standard")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "7")
    monkeypatch.setenv("AWS_RETRY_MODE", "Adaptive")
    config = ClientConfig()
    assert (config.max_attempts, config.retry_mode) == (7, "adaptive")
    assert ClientConfig(max_attempts=2, retry_mode="legacy").max_attempts == 2
    assert ClientConfig(max_attempts=2, retry_mode="legacy").retry_mode == "legacy"
    assert PersonalizeEventsClient(region="us-east-1").retry_policy.max_attempts == 7


@pytest.mark.parametrize(("variable", "value"), [("AWS_MAX_ATTEMPTS", "0"), ("AWS_MAX_ATTEMPTS", "three")])
def test_a_bad_max_attempts_variable_is_named(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    """A malformed AWS_MAX_ATTEMPTS raises ValidationError naming it, rather than being ignored."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as info:
        ClientConfig()
    assert info.value.path == variable


def test_a_bad_retry_mode_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unknown AWS_RETRY_MODE (or retry_mode=) raises ValidationError listing the three modes."""
    monkeypatch.setenv("AWS_RETRY_MODE", "aggressive")
    with pytest.raises(ValidationError, match="standard, adaptive, legacy") as info:
        ClientConfig()
    assert info.value.path == "AWS_RETRY_MODE"
    monkeypatch.delenv("AWS_RETRY_MODE")
    with pytest.raises(ValidationError):
        ClientConfig(retry_mode="aggressive")  # type: ignore[arg-type]


async def test_aws_max_attempts_bounds_the_calls_made(
    monkeypatch: pytest.MonkeyPatch, emulator: Emulator, retry_testing: None
) -> None:
    """With AWS_MAX_ATTEMPTS=5 a throttled call is tried 5 times, under every retry mode."""
    emulator.faults = Faults(throttle=1.0, seed=1)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "5")
    for mode in ("standard", "legacy", "adaptive"):
        monkeypatch.setenv("AWS_RETRY_MODE", mode)
        client = PersonalizeEventsClient(
            region="us-east-1", endpoint_url=emulator.endpoint_url, credentials=Credentials("AKID", "secret")
        )
        async with client:
            with pytest.raises(ThrottlingException) as info:
                await client.put_items(dataset_arn=ARN, items=[Item(item_id="i1")])
        assert info.value.attempts == 5, mode
    assert emulator.calls[("PutItems", 400)] == 15
