"""Credentials without HTTP: the environment, the shared files, credential_process, refresh, the chain, the region."""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from aiopersonalize_events import NoCredentialsError, NoRegionError
from aiopersonalize_events._aws_config import read_files
from aiopersonalize_events._chain import CredentialChain, default_provider
from aiopersonalize_events._credentials import (
    ADVISORY_RETRY_SECONDS,
    Credentials,
    RefreshingProvider,
    SourceFailed,
    SourceUnavailable,
    StaticProvider,
)
from aiopersonalize_events._environ import positive_int, positive_number
from aiopersonalize_events._region import resolve_region
from aiopersonalize_events._sources._documents import parse_timestamp, redact
from aiopersonalize_events._sources.environment import EnvironmentProvider
from aiopersonalize_events._sources.shared_files import SharedFilesSource
from aiopersonalize_events._sources.sts import sts_endpoint

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN = "IQoJb3JpZ2luX2VjEXAMPLETOKENvalue0123456789abcdefABCDEF/+=="
START = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


pytestmark = pytest.mark.usefixtures("aws_env")  # the conftest fixture: a clean AWS environment, temporary HOME


def write(home: Path, name: str, text: str) -> Path:
    path = home / ".aws" / name
    path.write_text(textwrap.dedent(text))
    return path


class Clock:
    """A settable clock for the refresh logic."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def creds(key: str = "AKIDEXAMPLE00000001", *, expires_in: float | None = None, now: datetime = START) -> Credentials:
    expiration = None if expires_in is None else now + timedelta(seconds=expires_in)
    return Credentials(key, SECRET, TOKEN if expires_in is not None else None, expiration)


class Fetcher:
    """An async fetch function that counts calls and can be held, failed or fed."""

    def __init__(self, *results: Credentials | Exception) -> None:
        self.results = list(results)
        self.calls = 0
        self.gate: asyncio.Event | None = None

    async def __call__(self) -> Credentials:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        result = self.results.pop(0) if len(self.results) > 1 else self.results[0]
        if isinstance(result, Exception):
            raise result
        return result


def process_script(tmp_path: Path, body: str, name: str = "proc.py") -> str:
    script = tmp_path / name
    script.write_text(textwrap.dedent(body))
    return f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}"


COUNTING_PROCESS = """
    import json, pathlib, sys
    counter = pathlib.Path(sys.argv[0]).with_suffix(".count")
    n = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(n))
    out = {{"Version": 1, "AccessKeyId": "AKIDPROCESS0000000%d" % n, "SecretAccessKey": {secret!r},
           "SessionToken": {token!r}}}
    expiration = {expiration!r}
    if expiration:
        out["Expiration"] = expiration
    print(json.dumps(out))
"""


def counting_process(tmp_path: Path, expiration: str | None = None) -> tuple[str, Path]:
    command = process_script(
        tmp_path, COUNTING_PROCESS.format(secret=SECRET, token=TOKEN, expiration=expiration), "counting.py"
    )
    return command, tmp_path / "counting.count"


# --- Credentials and simple providers ----------------------------------------------------------


def test_credentials_repr_hides_secret_and_token() -> None:
    """Credentials' repr shows only the ends of the key id, never the secret key or the token."""
    value = Credentials("AKIDEXAMPLE00000001", SECRET, TOKEN, START)
    text = repr(value) + str(value)
    assert SECRET not in text
    assert TOKEN not in text
    assert "AKIDEXAMPLE00000001" not in text
    assert "AKID...0001" in text


async def test_static_provider_returns_its_credentials() -> None:
    """StaticProvider returns the same credentials every time and hides them in repr."""
    provider = StaticProvider(creds())
    assert await provider.resolve() is await provider.resolve()
    assert SECRET not in repr(provider)


async def test_environment_provider_reads_keys_and_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """EnvironmentProvider reads AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN at resolve time."""
    provider = EnvironmentProvider()
    with pytest.raises(NoCredentialsError, match="AWS_ACCESS_KEY_ID"):
        await provider.resolve()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDENVIRONMENT00001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    found = await provider.resolve()
    assert (found.access_key_id, found.secret_access_key, found.session_token) == (
        "AKIDENVIRONMENT00001",
        SECRET,
        TOKEN,
    )


async def test_default_chain_uses_environment_first(monkeypatch: pytest.MonkeyPatch, aws_env: Path) -> None:
    """With keys in the environment and in the default profile, the environment wins."""
    write(
        aws_env,
        "credentials",
        f"[default]\naws_access_key_id = AKIDFILE000000000001\naws_secret_access_key = {SECRET}\n",
    )
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDENVIRONMENT00001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    assert (await default_provider().resolve()).access_key_id == "AKIDENVIRONMENT00001"


async def test_environ_argument_replaces_os_environ(aws_env: Path) -> None:
    """default_provider(environ=...) reads that mapping instead of os.environ."""
    environ = {"AWS_ACCESS_KEY_ID": "AKIDMAPPING000000001", "AWS_SECRET_ACCESS_KEY": SECRET, "HOME": str(aws_env)}
    environ["AWS_EC2_METADATA_DISABLED"] = "true"
    assert (await default_provider(environ=environ).resolve()).access_key_id == "AKIDMAPPING000000001"


# --- shared files ------------------------------------------------------------------------------


async def test_shared_credentials_default_profile(aws_env: Path) -> None:
    """Static keys of [default] in ~/.aws/credentials are found, with aws_session_token."""
    write(
        aws_env,
        "credentials",
        f"""\
        [default]
        aws_access_key_id = AKIDFILE000000000001
        aws_secret_access_key = {SECRET}
        aws_session_token = {TOKEN}
        """,
    )
    found = await default_provider().resolve()
    assert (found.access_key_id, found.secret_access_key, found.session_token) == (
        "AKIDFILE000000000001",
        SECRET,
        TOKEN,
    )
    assert found.expiration is None


async def test_explicit_profile_skips_environment_keys(monkeypatch: pytest.MonkeyPatch, aws_env: Path) -> None:
    """profile= skips the environment keys (as botocore does) and uses that profile's keys."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDENVIRONMENT00001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    write(
        aws_env, "credentials", f"[dev]\naws_access_key_id = AKIDDEVPROFILE000001\naws_secret_access_key = {SECRET}\n"
    )
    assert (await default_provider("dev").resolve()).access_key_id == "AKIDDEVPROFILE000001"


async def test_aws_profile_variable_selects_profile_but_environment_keys_win(
    monkeypatch: pytest.MonkeyPatch, aws_env: Path
) -> None:
    """AWS_PROFILE selects the profile of the shared files, but environment keys still come first."""
    write(
        aws_env, "credentials", f"[dev]\naws_access_key_id = AKIDDEVPROFILE000001\naws_secret_access_key = {SECRET}\n"
    )
    monkeypatch.setenv("AWS_PROFILE", "dev")
    assert (await default_provider().resolve()).access_key_id == "AKIDDEVPROFILE000001"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDENVIRONMENT00001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    assert (await default_provider().resolve()).access_key_id == "AKIDENVIRONMENT00001"


async def test_config_file_profile_sections(aws_env: Path) -> None:
    """In ~/.aws/config a profile is [profile NAME] (quotes allowed) or [default]; a bare [NAME] is not a profile."""
    write(
        aws_env,
        "config",
        f"""\
        [default]
        aws_access_key_id = AKIDCONFIGDEFAULT001
        aws_secret_access_key = {SECRET}
        [profile dev]
        aws_access_key_id = AKIDCONFIGDEV0000001
        aws_secret_access_key = {SECRET}
        [profile "my team"]
        aws_access_key_id = AKIDCONFIGTEAM000001
        aws_secret_access_key = {SECRET}
        [bare]
        aws_access_key_id = AKIDCONFIGBARE000001
        aws_secret_access_key = {SECRET}
        """,
    )
    assert (await default_provider().resolve()).access_key_id == "AKIDCONFIGDEFAULT001"
    assert (await default_provider("dev").resolve()).access_key_id == "AKIDCONFIGDEV0000001"
    assert (await default_provider("my team").resolve()).access_key_id == "AKIDCONFIGTEAM000001"
    with pytest.raises(NoCredentialsError, match="profile 'bare' not found"):
        await default_provider("bare").resolve()


async def test_file_locations_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """AWS_SHARED_CREDENTIALS_FILE and AWS_CONFIG_FILE move the shared files."""
    (tmp_path / "creds.ini").write_text(
        f"[a]\naws_access_key_id = AKIDMOVEDCREDS000001\naws_secret_access_key = {SECRET}\n"
    )
    (tmp_path / "conf.ini").write_text(
        f"[profile b]\naws_access_key_id = AKIDMOVEDCONF0000001\naws_secret_access_key = {SECRET}\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "creds.ini"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "conf.ini"))
    assert (await default_provider("a").resolve()).access_key_id == "AKIDMOVEDCREDS000001"
    assert (await default_provider("b").resolve()).access_key_id == "AKIDMOVEDCONF0000001"


async def test_profile_precedence_credentials_file_keys_then_process_then_config_keys(
    aws_env: Path, tmp_path: Path
) -> None:
    """Within a profile: credentials-file keys, then credential_process, then config-file keys (botocore's order)."""
    command, _ = counting_process(tmp_path)
    write(
        aws_env,
        "config",
        f"""\
        [profile p]
        credential_process = {command}
        aws_access_key_id = AKIDCONFIGKEYS000001
        aws_secret_access_key = {SECRET}
        """,
    )
    assert (await default_provider("p").resolve()).access_key_id == "AKIDPROCESS00000001"
    write(aws_env, "credentials", f"[p]\naws_access_key_id = AKIDCREDSFILE0000001\naws_secret_access_key = {SECRET}\n")
    assert (await default_provider("p").resolve()).access_key_id == "AKIDCREDSFILE0000001"


async def test_default_section_of_configparser_does_not_leak(aws_env: Path) -> None:
    """A [DEFAULT] section is an ordinary (unused) section, not values copied into every profile."""
    write(
        aws_env,
        "credentials",
        f"[DEFAULT]\naws_access_key_id = AKIDLEAK000000000001\naws_secret_access_key = {SECRET}\n"
        "[x]\nregion = us-east-1\n",
    )
    with pytest.raises(NoCredentialsError, match="profile 'x' has no keys"):
        await default_provider("x").resolve()


async def test_unparsable_credentials_file_names_line_not_content(aws_env: Path) -> None:
    """A malformed credentials file gives an error naming the file and line, never the line's secret."""
    write(aws_env, "credentials", f"aws_secret_access_key = {SECRET}\n[default]\n")
    with pytest.raises(NoCredentialsError) as info:
        await default_provider().resolve()
    text = str(info.value)
    assert "credentials: line 1" in text
    assert SECRET not in text


def test_aws_files_repr_hides_values(aws_env: Path) -> None:
    """The parsed files' repr shows paths only, never the values they hold."""
    write(
        aws_env,
        "credentials",
        f"[default]\naws_access_key_id = AKIDFILE000000000001\naws_secret_access_key = {SECRET}\n",
    )
    files = read_files(os.environ)
    assert SECRET not in repr(files)
    assert files.credentials_path in repr(files)
    assert files.profile_names() == ["default"]


# --- credential_process ------------------------------------------------------------------------


async def test_credential_process_without_expiration_is_static(aws_env: Path, tmp_path: Path) -> None:
    """credential_process output without Expiration gives credentials that are cached and never re-run."""
    command, counter = counting_process(tmp_path)
    write(aws_env, "config", f"[default]\ncredential_process = {command}\n")
    provider = default_provider()
    first = await provider.resolve()
    assert (first.access_key_id, first.secret_access_key, first.session_token) == ("AKIDPROCESS00000001", SECRET, TOKEN)
    assert first.expiration is None
    assert (await provider.resolve()) is first
    assert counter.read_text() == "1"


async def test_credential_process_with_expiration_is_refreshed(aws_env: Path, tmp_path: Path) -> None:
    """credential_process output with Expiration is re-run once the mandatory window is reached."""
    command, counter = counting_process(tmp_path, expiration="2024-05-01T13:00:00Z")
    write(aws_env, "config", f"[default]\ncredential_process = {command}\n")
    clock = Clock()
    provider = default_provider(clock=clock)
    first = await provider.resolve()
    assert first.expiration == datetime(2024, 5, 1, 13, 0, tzinfo=timezone.utc)
    clock.advance(30 * 60)  # 30 minutes left: still fresh
    assert (await provider.resolve()) is first
    clock.advance(25 * 60)  # 5 minutes left: mandatory
    second = await provider.resolve()
    assert second.access_key_id == "AKIDPROCESS00000002"
    assert counter.read_text() == "2"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("import sys; sys.stderr.write('login failed for key {secret}\\n'); sys.exit(3)", "exited with status 3"),
        ("print('not json')", "did not print a JSON object"),
        (
            "import json; print(json.dumps({{'Version': 2, 'AccessKeyId': 'A', 'SecretAccessKey': {secret!r}}}))",
            "Version 2",
        ),
        ("import json; print(json.dumps({{'Version': 1, 'SecretAccessKey': {secret!r}}}))", "printed no AccessKeyId"),
        (
            "import json; print(json.dumps({{'Version': 1, 'AccessKeyId': 'A', 'SecretAccessKey': {secret!r}, "
            "'Expiration': 'soon'}}))",
            "Expiration that is not",
        ),
    ],
)
async def test_credential_process_failures_are_clear_and_quiet(
    aws_env: Path, tmp_path: Path, body: str, expected: str
) -> None:
    """A failing or malformed credential_process stops the chain with a clear error that holds no secret."""
    command = process_script(tmp_path, body.format(secret=SECRET))
    write(aws_env, "config", f"[default]\ncredential_process = {command}\n")
    with pytest.raises(NoCredentialsError, match=expected) as info:
        await default_provider().resolve()
    assert SECRET not in str(info.value)
    assert "credential_process 'python" in str(info.value)  # the program, not its arguments


async def test_credential_process_stderr_excerpt_is_redacted(aws_env: Path, tmp_path: Path) -> None:
    """The stderr excerpt in the error keeps plain words but replaces key-like runs."""
    command = process_script(tmp_path, f"import sys; sys.stderr.write('error: token {TOKEN} expired\\n'); sys.exit(1)")
    write(aws_env, "config", f"[default]\ncredential_process = {command}\n")
    with pytest.raises(NoCredentialsError) as info:
        await default_provider().resolve()
    assert "error: token [redacted] expired" in str(info.value)


async def test_credential_process_timeout_kills_it(aws_env: Path, tmp_path: Path) -> None:
    """A credential_process that runs past its timeout is killed and reported."""
    # decided by what the source reports (the timeout's message) and by the process being gone, not by how
    # long load() took; the program would sleep for an hour, the wait_for is only a hang guard (200x the timeout)
    pid_file = tmp_path / "proc.pid"
    command = process_script(
        tmp_path,
        f"import os, pathlib, time; pathlib.Path({str(pid_file)!r}).write_text(str(os.getpid())); time.sleep(3600)",
    )
    write(aws_env, "config", f"[default]\ncredential_process = {command}\n")
    source = SharedFilesSource(process_timeout=0.3)
    with pytest.raises(SourceFailed, match=r"did not finish within 0\.3 s"):
        await asyncio.wait_for(source.load(), 60)
    if pid_file.exists():  # it had started (under load it may be killed before it wrote its id)
        with pytest.raises(ProcessLookupError):  # killed and reaped
            os.kill(int(pid_file.read_text()), 0)


async def test_credential_process_missing_program(aws_env: Path, tmp_path: Path) -> None:
    """A credential_process whose program does not exist is reported as not started."""
    write(aws_env, "config", f"[default]\ncredential_process = {tmp_path / 'nope'} --secret {SECRET}\n")
    with pytest.raises(NoCredentialsError, match="could not be started") as info:
        await default_provider().resolve()
    assert SECRET not in str(info.value)


async def test_loop_keeps_running_during_slow_credential_process(aws_env: Path, tmp_path: Path) -> None:
    """The event loop keeps ticking while a slow (0.5 s) credential_process runs."""
    # the program answers only once the ticker has ticked 5 times: a blocked loop would never let it (the
    # process timeout then fails the test); decided by the ticks, not by how long anything took
    flag = tmp_path / "ticked"
    command = process_script(
        tmp_path,
        f"""\
        import json, pathlib, time
        while not pathlib.Path({str(flag)!r}).exists():
            time.sleep(0.01)
        print(json.dumps({{"Version": 1, "AccessKeyId": "AKIDSLOW000000000001", "SecretAccessKey": {SECRET!r}}}))
        """,
    )
    write(aws_env, "config", f"[default]\ncredential_process = {command}\n")
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.02)
            ticks += 1
            if ticks == 5:
                flag.write_text("")

    task = asyncio.create_task(ticker())
    try:
        found = await default_provider().resolve()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert found.access_key_id == "AKIDSLOW000000000001"
    assert ticks >= 5  # the program waited for 5 ticks; a blocked loop gives 0 and the process times out


# --- assume-role configuration errors (no STS call needed) ---------------------------------------


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            "[profile a]\nrole_arn = arn:aws:iam::1:role/a\nsource_profile = b\n"
            "[profile b]\nrole_arn = arn:aws:iam::1:role/b\nsource_profile = a\n",
            "source_profile loop: a -> b -> a",
        ),
        ("[profile a]\nrole_arn = arn:aws:iam::1:role/a\n", "neither source_profile nor credential_source"),
        (
            "[profile a]\nrole_arn = arn:aws:iam::1:role/a\nsource_profile = b\ncredential_source = Environment\n",
            "both source_profile and credential_source",
        ),
        ("[profile a]\nrole_arn = arn:aws:iam::1:role/a\ncredential_source = Lambda\n", "must be Environment"),
        ("[profile a]\nrole_arn = arn:aws:iam::1:role/a\nsource_profile = gone\n", "source_profile 'gone'"),
        (
            "[profile a]\nrole_arn = arn:aws:iam::1:role/a\nsource_profile = b\nmfa_serial = arn:aws:iam::1:mfa/u\n",
            "mfa_serial",
        ),
        (
            "[profile a]\nrole_arn = arn:aws:iam::1:role/a\ncredential_source = Environment\n",
            "credential_source Environment of profile 'a' gave nothing",
        ),
    ],
)
async def test_assume_role_configuration_errors(aws_env: Path, config: str, expected: str) -> None:
    """Broken role configurations stop the chain with an error naming the problem."""
    write(aws_env, "config", config)
    with pytest.raises(NoCredentialsError, match=expected):
        await default_provider("a").resolve()


# --- RefreshingProvider ------------------------------------------------------------------------


async def test_refresh_first_resolve_fetches_then_caches() -> None:
    """The first resolve fetches; later ones before the advisory window return the cache."""
    clock = Clock()
    fetch = Fetcher(creds(expires_in=3600))
    provider = RefreshingProvider(fetch, clock=clock)
    first = await provider.resolve()
    clock.advance(3600 - 15 * 60 - 1)  # 15 min + 1 s left
    assert (await provider.resolve()) is first
    assert fetch.calls == 1


async def test_refresh_never_for_credentials_without_expiration() -> None:
    """Credentials without an expiration are fetched once and kept for good."""
    clock = Clock()
    fetch = Fetcher(creds())
    provider = RefreshingProvider(fetch, clock=clock)
    await provider.resolve()
    clock.advance(10 * 365 * 86400)
    await provider.resolve()
    assert fetch.calls == 1


async def test_advisory_window_one_caller_refreshes_others_use_current() -> None:
    """In the advisory window one caller refreshes while concurrent callers get the current credentials at once."""
    clock = Clock()
    old = creds("AKIDOLD0000000000001", expires_in=12 * 60)  # inside advisory (15), outside mandatory (10)
    new = creds("AKIDNEW0000000000001", expires_in=3600)
    fetch = Fetcher(new)
    fetch.gate = asyncio.Event()
    provider = RefreshingProvider(fetch, initial=old, clock=clock)
    tasks = [asyncio.create_task(provider.resolve()) for _ in range(5)]
    for _ in range(5):
        await asyncio.sleep(0)
    done = [t for t in tasks if t.done()]
    assert len(done) == 4
    assert all(t.result() is old for t in done)
    fetch.gate.set()
    results = await asyncio.gather(*tasks)
    assert results.count(new) == 1
    assert fetch.calls == 1
    assert (await provider.resolve()) is new


async def test_mandatory_window_callers_wait_for_one_refresh() -> None:
    """In the mandatory window every caller waits, and concurrent callers cause exactly one refresh."""
    clock = Clock()
    old = creds("AKIDOLD0000000000001", expires_in=3600)
    new = creds("AKIDNEW0000000000001", expires_in=2 * 3600)
    fetch = Fetcher(new)
    provider = RefreshingProvider(fetch, initial=old, clock=clock)
    clock.advance(55 * 60)  # 5 minutes left
    fetch.gate = asyncio.Event()
    tasks = [asyncio.create_task(provider.resolve()) for _ in range(10)]
    for _ in range(5):
        await asyncio.sleep(0)
    assert not any(t.done() for t in tasks)
    fetch.gate.set()
    assert all(r is new for r in await asyncio.gather(*tasks))
    assert fetch.calls == 1


async def test_concurrent_first_resolves_fetch_once() -> None:
    """Many callers resolving before any credentials exist cause a single fetch."""
    fetch = Fetcher(creds(expires_in=3600))
    fetch.gate = asyncio.Event()
    provider = RefreshingProvider(fetch, clock=Clock())
    tasks = [asyncio.create_task(provider.resolve()) for _ in range(10)]
    await asyncio.sleep(0)
    fetch.gate.set()
    results = await asyncio.gather(*tasks)
    assert fetch.calls == 1
    assert len({id(r) for r in results}) == 1


async def test_failed_advisory_refresh_keeps_credentials_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    """A failed advisory refresh logs a warning (no secret), keeps the valid credentials and backs off."""
    caplog.set_level(logging.DEBUG, logger="aiopersonalize_events")
    clock = Clock()
    old = creds("AKIDOLD0000000000001", expires_in=14 * 60)
    new = creds("AKIDNEW0000000000001", expires_in=3600)
    fetch = Fetcher(NoCredentialsError("STS is down"), new)
    provider = RefreshingProvider(fetch, name="test source", initial=old, clock=clock)
    assert (await provider.resolve()) is old
    assert fetch.calls == 1
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "STS is down" in warnings[0].getMessage()
    assert "advisory" in warnings[0].getMessage()
    assert SECRET not in caplog.text
    assert TOKEN not in caplog.text
    clock.advance(ADVISORY_RETRY_SECONDS - 1)
    assert (await provider.resolve()) is old
    assert fetch.calls == 1  # backing off
    clock.advance(2)
    assert (await provider.resolve()) is new
    assert fetch.calls == 2


async def test_failed_advisory_backoff_ends_at_mandatory_window() -> None:
    """The back-off after a failed advisory refresh does not delay the mandatory refresh."""
    clock = Clock()
    old = creds("AKIDOLD0000000000001", expires_in=10 * 60 + 5)
    new = creds("AKIDNEW0000000000001", expires_in=3600)
    fetch = Fetcher(RuntimeError("boom"), new)
    provider = RefreshingProvider(fetch, initial=old, clock=clock)
    assert (await provider.resolve()) is old
    clock.advance(10)  # now inside the mandatory window, still within the back-off
    assert (await provider.resolve()) is new


async def test_failed_mandatory_refresh_raises() -> None:
    """A failed refresh in the mandatory window is raised to the caller."""
    clock = Clock()
    fetch = Fetcher(NoCredentialsError("STS is down"))
    provider = RefreshingProvider(fetch, initial=creds(expires_in=3600), clock=clock)
    clock.advance(59 * 60)
    with pytest.raises(NoCredentialsError, match="STS is down"):
        await provider.resolve()


async def test_refresh_returning_expired_credentials_raises() -> None:
    """A fetch that returns already-expired credentials is an error, not a silent failure later."""
    fetch = Fetcher(creds(expires_in=-1))
    with pytest.raises(NoCredentialsError, match="already expired"):
        await RefreshingProvider(fetch, name="src", clock=Clock()).resolve()


async def test_short_lived_credentials_are_not_refetched_on_every_call() -> None:
    """Fresh credentials that already fall in the mandatory window are used for a while, not re-fetched per call."""
    clock = Clock()
    fetch = Fetcher(creds("AKIDSHORT00000000001", expires_in=5 * 60), creds("AKIDSHORT00000000002", expires_in=5 * 60))
    provider = RefreshingProvider(fetch, clock=clock)
    first = await provider.resolve()
    clock.advance(30)
    assert (await provider.resolve()) is first
    clock.advance(31)
    assert (await provider.resolve()).access_key_id == "AKIDSHORT00000000002"
    assert fetch.calls == 2


def test_refresh_windows_must_be_ordered() -> None:
    """The mandatory window may not be longer than the advisory one."""
    with pytest.raises(ValueError, match="mandatory_window"):
        RefreshingProvider(Fetcher(creds()), advisory_window=60, mandatory_window=120)


# --- the chain ---------------------------------------------------------------------------------


class FakeSource:
    """A credential source that answers from a script and counts loads."""

    def __init__(self, name: str, result: Credentials | Exception, gate: asyncio.Event | None = None) -> None:
        self.name = name
        self.result = result
        self.loads = 0
        self.gate = gate

    async def load(self) -> Credentials:
        self.loads += 1
        if self.gate is not None:
            await self.gate.wait()
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


async def test_chain_takes_first_source_with_credentials() -> None:
    """The chain skips unavailable sources, takes the first that answers and never asks the later ones."""
    a = FakeSource("a", SourceUnavailable("not set"))
    b = FakeSource("b", creds("AKIDSOURCEB000000001"))
    c = FakeSource("c", creds("AKIDSOURCEC000000001"))
    chain = CredentialChain([a, b, c])
    assert (await chain.resolve()).access_key_id == "AKIDSOURCEB000000001"
    assert (await chain.resolve()).access_key_id == "AKIDSOURCEB000000001"
    assert (a.loads, b.loads, c.loads) == (1, 1, 0)


async def test_chain_stops_at_a_failing_configured_source() -> None:
    """A configured source that fails stops the chain; the error lists what was tried."""
    a = FakeSource("a", SourceUnavailable("not set"))
    b = FakeSource("b", SourceFailed("profile 'x' broke"))
    c = FakeSource("c", creds())
    with pytest.raises(NoCredentialsError) as info:
        await CredentialChain([a, b, c]).resolve()
    assert str(info.value) == "AWS credentials could not be loaded from b; tried: a: not set, b: profile 'x' broke"
    assert c.loads == 0


async def test_chain_concurrent_first_callers_share_one_search() -> None:
    """Concurrent first callers wait for one search, and share its failure too."""
    gate = asyncio.Event()
    source = FakeSource("only", SourceUnavailable("nothing"), gate)
    chain = CredentialChain([source])
    tasks = [asyncio.create_task(chain.resolve()) for _ in range(5)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, NoCredentialsError) and "only: nothing" in str(r) for r in results)
    assert source.loads == 1
    with pytest.raises(NoCredentialsError):
        await chain.resolve()  # a later call searches again
    assert source.loads == 2


async def test_chain_refreshes_temporary_credentials_through_their_source() -> None:
    """Temporary credentials from the chosen source are refreshed by loading that source again."""
    clock = Clock()
    source = FakeSource("temp", creds("AKIDTEMP000000000001", expires_in=3600))
    chain = CredentialChain([source], clock=clock)
    await chain.resolve()
    clock.advance(55 * 60)
    source.result = creds("AKIDTEMP000000000002", expires_in=3600, now=clock.now)
    assert (await chain.resolve()).access_key_id == "AKIDTEMP000000000002"
    assert source.loads == 2
    source.result = SourceFailed("gone")
    clock.advance(55 * 60)
    with pytest.raises(NoCredentialsError, match="refreshing AWS credentials from temp failed; tried: temp: gone"):
        await chain.resolve()


class Later:
    """A ``more=`` callable for CredentialChain that counts how often it is asked."""

    def __init__(self, *sources: FakeSource) -> None:
        self.sources = sources
        self.calls = 0

    def __call__(self) -> list[FakeSource]:
        self.calls += 1
        return list(self.sources)


async def test_chain_loads_later_sources_only_when_the_first_give_nothing() -> None:
    """Sources behind more= are never loaded when an earlier source answers, and loaded once when none does."""
    later = Later(FakeSource("later", creds("AKIDLATER00000000001")))
    chain = CredentialChain([FakeSource("first", creds("AKIDFIRST00000000001"))], more=later)
    assert repr(chain).startswith("CredentialChain('credential chain', sources=[first, ...]")
    assert (await chain.resolve()).access_key_id == "AKIDFIRST00000000001"
    assert later.calls == 0
    chain = CredentialChain([FakeSource("first", SourceUnavailable("not set"))], more=later)
    assert (await chain.resolve()).access_key_id == "AKIDLATER00000000001"
    assert later.calls == 1
    assert [source.name for source in chain.sources] == ["first", "later"]
    assert "sources=[first, later]," in repr(chain)
    assert later.calls == 1


async def test_chain_asks_for_later_sources_once_across_searches() -> None:
    """A chain that found nothing searches again on the next call, without loading its later sources again."""
    last = FakeSource("last", SourceUnavailable("nothing"))
    later = Later(last)
    chain = CredentialChain([FakeSource("first", SourceUnavailable("not set"))], more=later)
    for _ in range(2):
        with pytest.raises(NoCredentialsError, match="first: not set, last: nothing"):
            await chain.resolve()
    assert (later.calls, last.loads) == (1, 2)
    assert [source.name for source in CredentialChain([], more=Later()).sources] == []


def test_environment_numbers_fall_back_to_the_default() -> None:
    """Numeric settings (AWS_METADATA_SERVICE_TIMEOUT, ..._NUM_ATTEMPTS) are the default unless finite and positive."""
    name = "AWS_METADATA_SERVICE_NUM_ATTEMPTS"
    counts = {text: positive_int({name: text}, name, 1) for text in ("3", "2.0", "0.5", "0", "-2", "inf", "many", "")}
    assert counts == {"3": 3, "2.0": 2, "0.5": 1, "0": 1, "-2": 1, "inf": 1, "many": 1, "": 1}
    seconds = {text: positive_number({name: text}, name, 1.0) for text in ("0.25", "0", "nan", "inf", "-inf")}
    assert seconds == {"0.25": 0.25, "0": 1.0, "nan": 1.0, "inf": 1.0, "-inf": 1.0}


async def test_no_credentials_error_lists_every_source(aws_env: Path) -> None:
    """With nothing configured, NoCredentialsError names all five sources in order and why each gave nothing."""
    with pytest.raises(NoCredentialsError) as info:
        await default_provider().resolve()
    text = str(info.value)
    assert text.startswith("no AWS credentials found; tried: ")
    order = [
        "environment variables: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY not set",
        "web identity token (AWS_WEB_IDENTITY_TOKEN_FILE): AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN not set",
        f"shared credentials and config files: no [default] profile in {aws_env}/.aws/credentials or "
        f"{aws_env}/.aws/config",
        "container credentials endpoint: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and "
        "AWS_CONTAINER_CREDENTIALS_FULL_URI not set",
        "EC2 instance metadata: disabled by AWS_EC2_METADATA_DISABLED",
    ]
    positions = [text.index(part) for part in order]
    assert positions == sorted(positions)
    assert len(info.value.sources) == 5


async def test_no_credentials_error_for_named_profile_mentions_skipped_environment(aws_env: Path) -> None:
    """With profile= and no such profile, the error says the environment was skipped and the profile is missing."""
    with pytest.raises(NoCredentialsError) as info:
        await default_provider("ghost").resolve()
    text = str(info.value)
    assert "environment variables: skipped because profile 'ghost' was named explicitly" in text
    assert "profile 'ghost' not found" in text


async def test_no_secret_in_reprs_errors_or_logs(
    aws_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Across a chain that finds, refreshes and fails, no secret or token appears in any repr, error or log."""
    caplog.set_level(logging.DEBUG)
    write(
        aws_env,
        "credentials",
        f"[default]\naws_access_key_id = AKIDFILE000000000001\naws_secret_access_key = {SECRET}\n",
    )
    chain = default_provider()
    await chain.resolve()
    texts = [repr(chain), repr(chain.sources)]
    command = process_script(tmp_path, f"import sys; print({SECRET!r}); sys.stderr.write({TOKEN!r}); sys.exit(2)")
    write(aws_env, "config", f"[profile bad]\ncredential_process = {command}\n")
    try:
        await default_provider("bad").resolve()
    except NoCredentialsError as exc:
        texts += [str(exc), repr(exc), repr(exc.sources)]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDENVIRONMENT00001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    env_chain = default_provider()
    await env_chain.resolve()
    texts.append(repr(env_chain))
    texts.append(caplog.text)
    joined = "\n".join(texts)
    assert SECRET not in joined
    assert TOKEN not in joined
    assert "exited with status 2" in joined


# --- region ------------------------------------------------------------------------------------


async def test_region_order(monkeypatch: pytest.MonkeyPatch, aws_env: Path) -> None:
    """Region: the argument, then AWS_REGION, then AWS_DEFAULT_REGION, then the profile's region."""
    write(aws_env, "config", "[default]\nregion = eu-north-1\n[profile dev]\nregion = ap-south-1\n")
    assert await resolve_region() == "eu-north-1"
    assert await resolve_region(None, "dev") == "ap-south-1"
    monkeypatch.setenv("AWS_PROFILE", "dev")
    assert await resolve_region() == "ap-south-1"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-1")
    assert await resolve_region(None, "dev") == "us-west-1"
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    assert await resolve_region() == "us-west-2"
    assert await resolve_region("sa-east-1", "dev") == "sa-east-1"


async def test_region_from_credentials_file_profile(aws_env: Path) -> None:
    """A region in the credentials file's profile counts too (botocore merges both files)."""
    write(aws_env, "credentials", "[dev]\nregion = ca-central-1\n")
    assert await resolve_region(None, "dev") == "ca-central-1"


async def test_no_region_error_names_every_place(aws_env: Path) -> None:
    """NoRegionError is a ValueError that names the argument, both variables and the profile section."""
    with pytest.raises(ValueError, match="region") as info:
        await resolve_region(None, "dev")
    assert isinstance(info.value, NoRegionError)
    text = str(info.value)
    for place in ("region=", "AWS_REGION", "AWS_DEFAULT_REGION", "[profile dev]", str(aws_env / ".aws" / "config")):
        assert place in text
    assert "profile 'dev' is not in" in text
    with pytest.raises(NoRegionError, match=r"\[default\] section"):
        await resolve_region()


async def test_no_region_error_reports_unreadable_config(aws_env: Path) -> None:
    """A config file that cannot be parsed is named in NoRegionError, without its content."""
    write(aws_env, "config", f"region = {SECRET}\n")
    with pytest.raises(NoRegionError, match="before any") as info:
        await resolve_region()
    assert SECRET not in str(info.value)


# --- helpers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T12:00:00Z", datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)),
        ("2024-05-01T12:00:00.123456789Z", datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)),
        ("2024-05-01T14:00:00+02:00", datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)),
        ("2024-05-01T12:00:00", datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)),
    ],
)
def test_parse_timestamp(text: str, expected: datetime) -> None:
    """AWS time stamps parse with Z, fractions beyond microseconds, offsets, and no offset as UTC."""
    assert parse_timestamp(text) == expected


def test_redact_keeps_words_and_hides_key_like_runs() -> None:
    """redact keeps the last line's words and replaces runs that could be keys or tokens."""
    assert redact(f"first line\nbad key {SECRET} for AKIDEXAMPLE00000001 user\n") == (
        "bad key [redacted] for [redacted] user"
    )
    assert redact("ExpiredTokenException: The security token expired") == (
        "ExpiredTokenException: The security token expired"
    )
    assert len(redact("x " * 500)) == 200


@pytest.mark.parametrize(
    ("environ", "region", "expected"),
    [
        ({}, "eu-west-1", ("https://sts.eu-west-1.amazonaws.com", "eu-west-1")),
        ({}, "cn-north-1", ("https://sts.cn-north-1.amazonaws.com.cn", "cn-north-1")),
        ({}, None, ("https://sts.amazonaws.com", "us-east-1")),
        ({"AWS_ENDPOINT_URL": "http://127.0.0.1:1/"}, "eu-west-1", ("http://127.0.0.1:1", "eu-west-1")),
        (
            {"AWS_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_ENDPOINT_URL_STS": "http://127.0.0.1:2"},
            None,
            ("http://127.0.0.1:2", "us-east-1"),
        ),
        (
            {"AWS_ENDPOINT_URL_STS": "http://127.0.0.1:2", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"},
            "us-east-2",
            ("https://sts.us-east-2.amazonaws.com", "us-east-2"),
        ),
    ],
)
def test_sts_endpoint(environ: dict[str, str], region: str | None, expected: tuple[str, str]) -> None:
    """STS: AWS_ENDPOINT_URL_STS, then AWS_ENDPOINT_URL, then regional, then global (signed for us-east-1)."""
    assert sts_endpoint(environ, region) == expected
