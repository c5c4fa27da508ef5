"""Each optional module names the extra to install when its dependency is missing (the import made to fail)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("blocked", "module", "extra"),
    [("redis", "aiopersonalize_events.redis", "redis"), ("opentelemetry", "aiopersonalize_events.otel", "otel")],
)
def test_optional_module_names_its_extra(blocked: str, module: str, extra: str) -> None:
    """Importing the module without its dependency raises ImportError saying pip install 'aiopersonalize-events[X]'."""
    result = run(
        f"""
        import sys
        sys.modules[{blocked!r}] = None  # as if not installed
        try:
            import {module}
        except ImportError as exc:
            print(type(exc).__name__, exc)
        else:
            print("imported")
        """
    )
    assert result.returncode == 0, result.stderr
    assert f"pip install 'aiopersonalize-events[{extra}]'" in result.stdout, result.stdout


def test_login_refresh_names_its_extra() -> None:
    """Refreshing an `aws login` session without cryptography says to install the login extra."""
    result = run(
        """
        import sys
        sys.modules["cryptography"] = None
        from aiopersonalize_events._sources.login import dpop_proof
        try:
            dpop_proof("-----BEGIN EC PRIVATE KEY-----\\nAAAA\\n-----END EC PRIVATE KEY-----", "https://127.0.0.1/v1/token")
        except Exception as exc:
            print(type(exc).__name__, exc)
        """
    )
    assert result.returncode == 0, result.stderr
    assert "SourceFailed" in result.stdout
    assert "pip install 'aiopersonalize-events[login]'" in result.stdout


def test_cli_progress_bar_names_its_extra() -> None:
    """On a terminal without tqdm the command line says once which extra gives the progress bar."""
    result = run(
        """
        import os, pty, sys
        sys.modules["tqdm"] = None
        from aiopersonalize_events.cli.console import Console
        master, slave = pty.openpty()
        stream = os.fdopen(slave, "w")
        console = Console(stream, progress=True)
        assert not console.has_bar
        stream.flush()
        print(os.read(master, 4096).decode())
        """
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'aiopersonalize-events[cli]'" in result.stdout
    assert "--no-progress" in result.stdout
