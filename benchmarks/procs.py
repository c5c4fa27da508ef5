"""Child processes of the harness: the stub server and the workers, and making sure none outlives it.

Every child is started through ``Children`` and ended (terminate, then kill)
when the harness exits, normally, on an exception, on Ctrl-C or on SIGTERM.
Children only ever listen on or connect to 127.0.0.1.
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "BENCH_DIR",
    "ROOT",
    "Children",
    "Stub",
    "WorkerError",
    "WorkerSkipped",
    "child_env",
    "children",
    "parse_result",
    "run_python",
    "run_worker",
]

BENCH_DIR = Path(__file__).absolute().parent
ROOT = BENCH_DIR.parent
WORKER = BENCH_DIR / "worker.py"


class WorkerError(RuntimeError):
    """A worker exited without a result."""


class WorkerSkipped(RuntimeError):
    """A worker declined to run (``SKIP: reason`` on stderr), e.g. the recorder does not exist yet."""


class Children:
    """The live child processes; ``stop_all()`` ends them, and runs at exit, on Ctrl-C and on SIGTERM/SIGHUP."""

    def __init__(self) -> None:
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._installed = False

    def install(self) -> None:
        """Register the exit hook and turn SIGINT/SIGTERM/SIGHUP into a clean exit (idempotent)."""
        if self._installed:
            return
        self._installed = True
        atexit.register(self.stop_all)
        with contextlib.suppress(ValueError, OSError):  # not the main thread, or not supported here
            for sig in (signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, _exit_on_signal)
            # Ctrl-C stops the run even when started in the background, where SIGINT comes ignored
            signal.signal(signal.SIGINT, signal.default_int_handler)

    def start(self, args: list[str], env: Mapping[str, str] | None = None, **kwargs: Any) -> subprocess.Popen[bytes]:
        """Start a child and remember it."""
        self.install()
        proc: subprocess.Popen[bytes] = subprocess.Popen(args, env=dict(env) if env is not None else None, **kwargs)
        self._procs[proc.pid] = proc
        return proc

    def forget(self, proc: subprocess.Popen[bytes]) -> None:
        """Drop a child that has exited."""
        self._procs.pop(proc.pid, None)

    def stop(self, proc: subprocess.Popen[bytes], grace: float = 3.0) -> None:
        """End one child: SIGTERM, then SIGKILL after ``grace`` seconds."""
        if proc.poll() is None:
            try:
                proc.terminate()
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(grace)
            except ProcessLookupError:
                pass
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        self.forget(proc)

    def stop_all(self) -> None:
        """End every child still running."""
        for proc in list(self._procs.values()):
            self.stop(proc)


def _exit_on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


children = Children()


def child_env(package_root: Path | None = None, *, bytecode: bool = True) -> dict[str, str]:
    """The environment of a child: the package under test first on ``sys.path``, no proxies.

    ``bytecode`` lifts ``PYTHONDONTWRITEBYTECODE`` so that imports are
    measured from cached bytecode, as an installed package runs.
    """
    env = dict(os.environ)
    paths = [str(package_root or ROOT), str(ROOT)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        env.pop(name, None)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    if bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.setdefault("PYTHONHASHSEED", "0")
    return env


class Stub:
    """A running stub server process (``benchmarks.stub``)."""

    def __init__(self, kind: str = "raw", env: Mapping[str, str] | None = None, start_timeout: float = 20.0) -> None:
        self.kind = kind
        self.proc = children.start(
            [sys.executable, "-m", "benchmarks.stub", "--kind", kind, "--port", "0"],
            env=env or child_env(),
            cwd=str(ROOT),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + start_timeout
        line = b""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith(b"STUB ") or not line:
                break
        if not line.startswith(b"STUB "):
            err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
            children.stop(self.proc)
            raise WorkerError(f"the {kind} stub did not start: {err[-2000:]}")
        self.port = int(line.split()[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def stats(self) -> dict[str, Any]:
        """The stub's counters (requests, body_bytes, events, connections, cpu_s) and a wall clock reading."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", "/__stats")
            response = conn.getresponse()
            data: dict[str, Any] = json.loads(response.read())
        finally:
            conn.close()
        data["wall"] = time.monotonic()
        return data

    def close(self) -> None:
        """Stop the stub."""
        children.stop(self.proc)

    def __enter__(self) -> Stub:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def parse_result(out: bytes) -> dict[str, Any] | None:
    """The ``RESULT {json}`` a worker printed last, or None."""
    for line in reversed(out.decode(errors="replace").splitlines()):
        if line.startswith("RESULT "):
            result: dict[str, Any] = json.loads(line[7:])
            return result
    return None


def run_worker(
    mode: str,
    params: Mapping[str, object],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 120.0,
    wrap: list[str] | None = None,
) -> dict[str, Any]:
    """Run ``worker.py MODE key=value ...`` in a fresh process and return its result.

    ``wrap`` prefixes the command (a profiler). Raises ``WorkerSkipped`` when
    the worker says ``SKIP:``, ``WorkerError`` when it fails or times out.
    """
    args = [*(wrap or []), sys.executable, str(WORKER), mode, *(f"{k}={v}" for k, v in params.items())]
    proc = children.start(args, env=env or child_env(), cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        children.stop(proc)
        raise WorkerError(f"{mode} {dict(params)} timed out after {timeout:.0f}s") from None
    finally:
        if proc.poll() is None:
            children.stop(proc)
        children.forget(proc)
    result = parse_result(out)
    text = err.decode(errors="replace")
    if "SKIP: " in text:
        raise WorkerSkipped(text[text.index("SKIP: ") + 6 :].strip().splitlines()[0])
    if proc.returncode != 0 or result is None:
        raise WorkerError(f"{mode} {dict(params)} failed (exit {proc.returncode}): {text[-3000:]}")
    return result


def run_python(code: str, *, env: Mapping[str, str] | None = None, timeout: float = 60.0) -> tuple[str, str]:
    """Run ``python -c code`` in a fresh process and return its stdout and stderr."""
    # the working directory goes first on sys.path: use one that holds no Python modules
    quiet_dir = BENCH_DIR / "results"
    quiet_dir.mkdir(exist_ok=True)
    proc = children.start(
        [sys.executable, "-c", code],
        env=env or child_env(),
        cwd=str(quiet_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        children.stop(proc)
        raise WorkerError(f"python -c {code[:60]!r} timed out") from None
    finally:
        children.forget(proc)
    if proc.returncode != 0:
        raise WorkerError(f"python -c {code[:60]!r} failed: {err.decode(errors='replace')[-2000:]}")
    return out.decode(), err.decode(errors="replace")
