"""The pytest plugin's fixtures under pytest-asyncio strict mode, auto mode, and anyio (as FastAPI's docs use it)."""

from __future__ import annotations

import textwrap

import pytest

pytest_plugins = ["pytester"]

# what a user writes: a helper of their own, a test using both fixtures, one using the client alone,
# and one checking the options override and that the emulator serves the same loop as the test
BODY = """
import asyncio

import pytest

from aiopersonalize_events import Event


async def record_signup(client, *, user_id):
    await client.put_events(
        tracking_id="tracker",
        session_id="s1",
        user_id=user_id,
        event_list=[Event(event_type="signup", sent_at=1700000000, event_id="e1")],
    )


{mark}
async def test_signup_is_recorded(personalize_client, personalize_emulator):
    await record_signup(personalize_client, user_id="u1")
    assert personalize_emulator.events()[0]["eventType"] == "signup"
    assert personalize_emulator.events()[0]["userId"] == "u1"


{mark}
async def test_the_client_alone(personalize_client):
    await record_signup(personalize_client, user_id="u2")


{mark}
async def test_the_emulator_alone_with_options(personalize_emulator):
    assert personalize_emulator.verifying
    assert asyncio.get_running_loop() is not None
"""

CONFTEST = """
import pytest

@pytest.fixture
def personalize_emulator_options():
    return {"credentials": {"AKIDTEST": "test-secret"}}
"""


def _run(pytester: pytest.Pytester, *, mark: str, ini: str, args: tuple[str, ...] = ()) -> pytest.RunResult:
    # pytest-asyncio warns (an error here) unless its fixture loop scope is set: users set it too
    if "no:asyncio" not in args:
        ini += "\nasyncio_default_fixture_loop_scope = function"
    pytester.makeini(f"[pytest]\nfilterwarnings = error\n{ini}\n")
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_user=textwrap.dedent(BODY).format(mark=mark))
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=120)


def test_fixtures_work_in_pytest_asyncio_strict_mode(pytester: pytest.Pytester) -> None:
    """asyncio_mode = strict, tests marked @pytest.mark.asyncio: all pass, no warning."""
    result = _run(pytester, mark="@pytest.mark.asyncio", ini="asyncio_mode = strict")
    result.assert_outcomes(passed=3)


def test_fixtures_work_in_pytest_asyncio_auto_mode(pytester: pytest.Pytester) -> None:
    """asyncio_mode = auto, tests unmarked: all pass, no warning."""
    result = _run(pytester, mark="", ini="asyncio_mode = auto")
    result.assert_outcomes(passed=3)


def test_fixtures_work_under_anyio_with_pytest_asyncio_installed(pytester: pytest.Pytester) -> None:
    """@pytest.mark.anyio (FastAPI's docs), pytest-asyncio installed in its default strict mode: all pass."""
    result = _run(pytester, mark="@pytest.mark.anyio", ini="")
    result.assert_outcomes(passed=3)


def test_fixtures_work_under_anyio_without_pytest_asyncio(pytester: pytest.Pytester) -> None:
    """@pytest.mark.anyio with pytest-asyncio absent (-p no:asyncio): all pass."""
    result = _run(pytester, mark="@pytest.mark.anyio", ini="", args=("-p", "no:asyncio"))
    result.assert_outcomes(passed=3)


def test_anyio_on_trio_says_the_emulator_needs_asyncio(pytester: pytest.Pytester) -> None:
    """An anyio test on the trio backend fails with a message saying the fixtures need asyncio (aiohttp does)."""
    pytester.makeini("[pytest]\nfilterwarnings = error\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(
        test_trio="""
        import pytest

        @pytest.fixture
        def anyio_backend():
            return "trio"

        @pytest.mark.anyio
        async def test_on_trio(personalize_emulator):
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*need the asyncio backend*"])


def test_without_any_async_plugin_the_fixture_says_what_is_needed(pytester: pytest.Pytester) -> None:
    """Without pytest-asyncio or anyio's plugin the fixtures fail naming both ways to run them."""
    pytester.makeini("[pytest]\nfilterwarnings = error\n")
    pytester.makepyfile(
        test_sync="""
        def test_needs_a_runner(personalize_emulator):
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:asyncio", "-p", "no:anyio", timeout=120)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*pytest-asyncio*anyio*"])
