"""A profile of our client's hot path: ``put_events`` at concurrency 16 against the stub.

With ``py-spy`` installed (the ``bench`` extra), the worker warms up, waits,
py-spy attaches to it, and the timed section is sampled without slowing it
down much (``--nonblocking``). Without it, cProfile runs inside the worker
over the timed section (deterministic, but its overhead inflates small
functions). Either way the summary gives the CPU per PutEvents call spent in
each package (own time) and the inclusive time of our package's functions,
scaled to the worker's measured CPU seconds per call.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmarks.procs import ROOT, WORKER, WorkerError, children, run_worker

__all__ = ["profile_ours", "py_spy_path", "summarise_cprofile", "summarise_pyspy"]

OUR_PACKAGE = "aiopersonalize_events"


def py_spy_path() -> str | None:
    """The py-spy executable beside this interpreter or on PATH, if any."""
    beside = Path(sys.executable).parent / "py-spy"
    if beside.exists():
        return str(beside)
    return shutil.which("py-spy")


def _frame_parts(frame: str) -> tuple[str, str]:
    """``func (path:line)`` to (function, path)."""
    name, _, rest = frame.rpartition(" (")
    location = rest.rstrip(")")
    path = location.rpartition(":")[0] if ":" in location else location
    return (name or frame), path


def _package_of(path: str) -> str:
    if path.startswith("<"):
        if "attrs generated" in path:
            return "attrs (generated code)"
        return "python (frozen/builtin)"
    if "/" not in path and not path.endswith(".py"):
        return "other"
    head = path.split("/", 1)[0]
    if head.endswith(".py"):
        head = head[:-3]
    if head == "benchmarks":
        return "benchmark driver (user code)"
    return head


def summarise_pyspy(raw: str, cpu_us_per_call: float, top: int = 25) -> dict[str, Any]:
    """Own time by package and function, and inclusive time of our functions, in µs per call."""
    own_pkg: Counter[str] = Counter()
    own_fn: Counter[str] = Counter()
    incl_fn: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        leaf_name, leaf_path = _frame_parts(frames[-1])
        own_pkg[_package_of(leaf_path)] += count
        own_fn[f"{leaf_name} ({leaf_path})"] += count
        seen = set()
        for frame in frames:
            name, path = _frame_parts(frame)
            key = f"{name} ({path})"
            if key not in seen:
                seen.add(key)
                incl_fn[key] += count
    if not total:
        return {"samples": 0}

    def rows(counter: Counter[str], limit: int, keep: Any = None) -> list[dict[str, Any]]:
        out = []
        for key, count in counter.most_common():
            if keep is not None and not keep(key):
                continue
            out.append({"name": key, "share": count / total, "us_per_call": count / total * cpu_us_per_call})
            if len(out) >= limit:
                break
        return out

    return {
        "samples": total,
        "cpu_us_per_call": cpu_us_per_call,
        "own_by_package": rows(own_pkg, 30),
        "own_top": rows(own_fn, top),
        "inclusive_ours": rows(incl_fn, top, keep=lambda k: f"({OUR_PACKAGE}/" in k),
        "inclusive_deps": rows(
            incl_fn,
            top,
            keep=lambda k: any(f"({p}/" in k for p in ("aiohttp", "aws_requests_auth", "cattrs", "attr", "json")),
        ),
    }


def summarise_cprofile(path: str, calls: int, top: int = 25) -> dict[str, Any]:
    """Own and cumulative time per function from a cProfile dump, in µs per PutEvents call."""
    import pstats

    stats = pstats.Stats(path)
    entries = []
    for (filename, line, name), (_cc, ncalls, tottime, cumtime, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        short = filename
        for marker in ("site-packages/", "lib/python3."):
            if marker in short:
                short = short.split(marker, 1)[1]
                if marker == "lib/python3.":
                    short = short.split("/", 1)[1] if "/" in short else short
        if f"/{OUR_PACKAGE}/" in filename:
            short = filename[filename.index(f"{OUR_PACKAGE}/") :]
        entries.append(
            {
                "name": f"{name} ({short}:{line})",
                "calls_per_call": ncalls / calls,
                "own_us_per_call": 1e6 * tottime / calls,
                "cum_us_per_call": 1e6 * cumtime / calls,
                "ours": f"/{OUR_PACKAGE}/" in filename,
            }
        )
    by_own = sorted(entries, key=lambda e: -e["own_us_per_call"])[:top]
    ours = sorted((e for e in entries if e["ours"]), key=lambda e: -e["cum_us_per_call"])[:top]
    return {"own_top": by_own, "inclusive_ours": ours}


def _wait_for(stream: Any, marker: bytes, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    buffer = b""
    fd = stream.fileno()
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            return False
        buffer += chunk
        if marker in buffer:
            return True
    return False


def _profile_pyspy(
    spy: str, url: str, env: Mapping[str, str], duration: float, concurrency: int, client: str
) -> dict[str, Any]:
    params = {
        "client": client,
        "url": url,
        "concurrency": concurrency,
        "duration": duration,
        "warmup": max(200, 4 * concurrency),
        "hold": 1,
    }
    args = [sys.executable, str(WORKER), "throughput", *(f"{k}={v}" for k, v in params.items())]
    worker = children.start(
        args, env=env, cwd=str(ROOT), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out_file = Path(tempfile.mkdtemp(prefix="bench-pyspy-")) / "profile.txt"
    spy_proc = None
    try:
        assert worker.stdout is not None
        assert worker.stdin is not None
        if not _wait_for(worker.stdout, b"HOLD", 60.0):
            raise WorkerError("the profiled worker did not reach its warm-up end")
        spy_args = [spy, "record", "--pid", str(worker.pid), "--rate", "1000", "--duration", str(int(duration + 10))]
        spy_args += ["--function", "--format", "raw", "--nonblocking", "--output", str(out_file)]
        spy_proc = children.start(spy_args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert spy_proc.stdout is not None
        _wait_for(spy_proc.stdout, b"Sampling", 10.0)
        time.sleep(0.3)
        worker.stdin.write(b"go\n")
        worker.stdin.flush()
        out, err = worker.communicate(timeout=duration + 60)
        spy_proc.wait(timeout=30)
    finally:
        for proc in (worker, spy_proc):
            if proc is not None:
                children.stop(proc)
    result = None
    for line in out.decode(errors="replace").splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[7:])
    if result is None or not out_file.exists():
        raise WorkerError(f"profiling failed: {err.decode(errors='replace')[-2000:]}")
    raw = out_file.read_text()
    shutil.rmtree(out_file.parent, ignore_errors=True)
    cpu_us_per_call = 1e6 * result["cpu_s"] / max(1, result["calls"])
    summary = summarise_pyspy(raw, cpu_us_per_call)
    summary.update({"method": "py-spy (sampling at 1 kHz, --nonblocking)", "worker": result})
    return summary


def _profile_cprofile(
    url: str, env: Mapping[str, str], duration: float, concurrency: int, client: str
) -> dict[str, Any]:
    out_dir = Path(tempfile.mkdtemp(prefix="bench-cprofile-"))
    dump = out_dir / "profile.pstats"
    try:
        params = {
            "client": client,
            "url": url,
            "concurrency": concurrency,
            "duration": duration,
            "warmup": max(200, 4 * concurrency),
            "cprofile": str(dump),
        }
        result = run_worker("throughput", params, env=env, timeout=duration + 90)
        summary = summarise_cprofile(str(dump), max(1, result["calls"]))
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    summary.update({"method": "cProfile (deterministic; its overhead inflates small functions)", "worker": result})
    return summary


def profile_ours(
    url: str,
    env: Mapping[str, str],
    duration: float = 4.0,
    concurrency: int = 16,
    method: str = "auto",
    client: str = "ours",
) -> dict[str, Any]:
    """Profile ``client`` (ours by default) at ``concurrency`` against the stub at ``url``; py-spy when available."""
    spy = py_spy_path() if method in ("auto", "py-spy") else None
    if spy is not None:
        try:
            return _profile_pyspy(spy, url, env, duration, concurrency, client)
        except (WorkerError, OSError, subprocess.TimeoutExpired) as exc:
            if method == "py-spy":
                raise
            summary = _profile_cprofile(url, env, duration, concurrency, client)
            summary["note"] = f"py-spy failed ({exc}); used cProfile"
            return summary
    return _profile_cprofile(url, env, duration, concurrency, client)
