"""Stage costs in place: where each client's CPU goes inside the real request loop, per PutEvents call.

``python -m benchmarks.hotpath [--client ours,floor,aiobotocore]`` (and the
harness's stage phase): a worker (``benchmarks.worker``, mode ``throughput``)
runs the user workload at concurrency 16 against the stub, exactly as in the
throughput stage, while its Python stacks are sampled:

- by default the worker samples itself on *process CPU time* (``SIGPROF``,
  ``worker.StackSampler``): no thread, no tracing hook, a few microseconds per
  sample; the timer ticks with the kernel clock (250 Hz here), so runs are a
  few seconds long to gather a thousand samples or more;
- ``--method py-spy`` (the ``bench`` extra) samples at 1 kHz from outside the
  process instead (py-spy starts the worker: attaching to a running process
  needs ptrace rights that containers often lack), but it samples *wall time*
  while the thread is not idle: on a machine where the stub, the worker and
  py-spy share two cores, time spent preempted (typically right after a
  socket write wakes the stub) counts to whatever was running, so it
  overstates the HTTP and event-loop stages against a CPU-time measure.

Only the samples taken inside the worker's ``_timed_section`` count (not the
start-up, imports and warm-up). Each sample is put in one stage by its stack
(``classify``): under the worker's ``user_call`` (one call as the user makes
it) the outermost frame that matches a stage rule decides: the user's
``build_events``, to_wire and the JSON body, the request shape and its
validation, signing, aiohttp; what matches nothing is the client's other code
(call plumbing, retry loop, answer handling). Outside any call: aiohttp's
work on its own tasks and callbacks (the task that writes the request body,
the parser of the answers), the event loop with its selector and transports,
and the benchmark driver. A stage's µs per call is its share of the samples
times the CPU per call measured in the same run. The rules go by file and
function names, so they keep working while the library's internals move (a
function no rule knows lands in "other client code", never nowhere).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from benchmarks.procs import ROOT, WORKER, WorkerError, children, parse_result, run_worker

__all__ = [
    "MARKER",
    "STAGES",
    "classify",
    "profile_in_place",
    "py_spy_path",
    "stage_costs",
    "summarise_pyspy",
]

OUR_PACKAGE = "aiopersonalize_events"
MARKER = "_timed_section"  # the worker function the timed section runs in
CALL = "user_call"  # the worker closure that makes one call as the user does
DRIVER = "task"  # the worker's loop around the calls (_Drive.task)

Rule = Callable[[str, str], bool]  # (function, path) -> matches


def _base(function: str) -> str:
    """``make_ours.<locals>.build_events`` or ``Signer.headers`` to the bare name."""
    return function.rsplit(".", 1)[-1]


def _in_worker(path: str) -> bool:
    return path.endswith("worker.py")


def _user_code(function: str, path: str) -> bool:
    return _in_worker(path) and _base(function) == "build_events"


def _serialise(function: str, path: str) -> bool:
    return (
        path.endswith(("serde.py", "_json.py", "_wire.py"))
        or "cattrs" in path
        or path.startswith(("cattr/", "orjson"))
        or path.startswith("botocore/serialize")
        or (_in_worker(path) and _base(function) == "encode_body")
        or (OUR_PACKAGE in path and _base(function) in ("to_wire", "dumps_wire"))
    )


def _shape(function: str, path: str) -> bool:
    if path.startswith("botocore/validate"):  # its decorator wraps the serialiser too: only the validator counts
        return _base(function) != "serialize_to_request"
    return (
        path.endswith(("_shapes.py", "_validators.py"))
        or ("attrs generated" in path and f"{OUR_PACKAGE}." in path)
        or path.startswith(("attr/", "attrs/"))
    )


def _signing(function: str, path: str) -> bool:
    return (
        "_signing" in path
        or path.startswith(("aws_requests_auth/", "botocore/auth", "botocore/signers", "aiobotocore/signers"))
        or (_in_worker(path) and _base(function) == "sigv4_headers")
    )


def _http(function: str, path: str) -> bool:
    return path.startswith(("aiohttp/", "multidict/", "yarl/", "aiohappyeyeballs/", "aiobotocore/httpsession"))


STAGES: tuple[tuple[str, Rule], ...] = (
    ("build the 10 events (user code)", _user_code),
    ("to_wire + JSON body", _serialise),
    ("request build (shape, validation)", _shape),
    ("signing", _signing),
    ("HTTP: aiohttp under the call", _http),
)
OTHER_CALL = "other client code under the call"
HTTP_OUTSIDE = "HTTP: aiohttp outside the call (body-writing task, answer parsing)"
LOOP = "event loop, selector, transports"
HARNESS = "benchmark driver"
STAGE_ORDER: tuple[str, ...] = (*(name for name, _ in STAGES), OTHER_CALL, HTTP_OUTSIDE, LOOP, HARNESS)


def _frame_parts(frame: str) -> tuple[str, str]:
    """``func (path:line)`` to (function, path)."""
    name, _, rest = frame.rpartition(" (")
    location = rest.rstrip(")")
    path = location.rpartition(":")[0] if ":" in location else location
    return (name or frame), path


def _parse_raw(raw: str) -> list[tuple[list[str], int]]:
    """py-spy raw (collapsed) lines to (frames root first, count)."""
    out = []
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if stack and count_text.isdigit():
            out.append((stack.split(";"), int(count_text)))
    return out


def timed_only(raw: str, marker: str = MARKER) -> str:
    """Keep the stacks that pass through ``marker`` (the timed section), from there on."""
    lines = []
    for frames, count in _parse_raw(raw):
        for i, frame in enumerate(frames):
            function, path = _frame_parts(frame)
            if _base(function) == marker and _in_worker(path):
                lines.append(f"{';'.join(frames[i:])} {count}")
                break
    return "\n".join(lines) + ("\n" if lines else "")


def classify(frames: list[str]) -> str:
    """The stage one sample (frames root first, inside the timed section) belongs to."""
    parts = [_frame_parts(f) for f in frames]
    call_at = next((i for i, (fn, path) in enumerate(parts) if _in_worker(path) and _base(fn) == CALL), None)
    if call_at is None:
        leaf_fn, leaf_path = parts[-1]
        if _in_worker(leaf_path) and _base(leaf_fn) in (DRIVER, "run", MARKER):
            return HARNESS
        return HTTP_OUTSIDE if any(_http(fn, path) for fn, path in parts) else LOOP
    for function, path in parts[call_at + 1 :]:
        for name, rule in STAGES:
            if rule(function, path):
                return name
    return OTHER_CALL


def stage_costs(raw: str, cpu_us_per_call: float) -> dict[str, Any]:
    """Samples per stage and µs per call (share of the timed section's samples x measured CPU per call)."""
    counts: Counter[str] = Counter()
    for frames, count in _parse_raw(timed_only(raw)):
        counts[classify(frames)] += count
    total = sum(counts.values())
    stages = [
        {
            "stage": name,
            "samples": counts.get(name, 0),
            "share": counts.get(name, 0) / total if total else None,
            "us_per_call": counts.get(name, 0) / total * cpu_us_per_call if total else None,
        }
        for name in STAGE_ORDER
    ]
    return {"samples": total, "cpu_us_per_call": cpu_us_per_call, "stages": stages}


def py_spy_path() -> str | None:
    """The py-spy executable beside this interpreter or on PATH, if any."""
    beside = Path(sys.executable).parent / "py-spy"
    if beside.exists():
        return str(beside)
    return shutil.which("py-spy")


def _package_of(path: str) -> str:
    if path.startswith("<"):
        if "attrs generated" in path:
            return "attrs (generated code)"
        if "cattrs generated" in path:
            return "cattrs (generated code)"
        return "python (frozen/builtin)"
    if "/" not in path and not path.endswith(".py"):
        return "other"
    head = path.split("/", 1)[0]
    if head.endswith(".py"):
        head = head[:-3]
    if head in ("benchmarks", "worker"):
        return "benchmark driver (user code)"
    return head


def summarise_pyspy(raw: str, cpu_us_per_call: float, top: int = 25) -> dict[str, Any]:
    """Own time by package and function, and inclusive time of our functions, in µs per call."""
    own_pkg: Counter[str] = Counter()
    own_fn: Counter[str] = Counter()
    incl_fn: Counter[str] = Counter()
    total = 0
    for frames, count in _parse_raw(raw):
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
        "inclusive_ours": rows(incl_fn, top, keep=lambda k: f"({OUR_PACKAGE}/" in k or f"{OUR_PACKAGE}." in k),
    }


def _sample_pyspy(
    spy: str, params: dict[str, Any], env: Mapping[str, str], timeout: float
) -> tuple[str, dict[str, Any]]:
    out_dir = Path(tempfile.mkdtemp(prefix="bench-pyspy-"))
    out_file = out_dir / "stacks.txt"
    args = [spy, "record", "--rate", "1000", "--function", "--format", "raw", "--nonblocking"]
    args += ["--output", str(out_file), "--", sys.executable, str(WORKER), "throughput"]
    args += [f"{k}={v}" for k, v in params.items()]
    proc = children.start(args, env=env, cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise WorkerError(f"py-spy run timed out after {timeout:.0f}s") from None
    finally:
        children.stop(proc)
    try:
        result = parse_result(out)
        if result is None or not out_file.exists():
            raise WorkerError(f"py-spy run failed (exit {proc.returncode}): {err.decode(errors='replace')[-1500:]}")
        return out_file.read_text(), result
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)


def _sample_sigprof(params: dict[str, Any], env: Mapping[str, str], timeout: float) -> tuple[str, dict[str, Any]]:
    out_dir = Path(tempfile.mkdtemp(prefix="bench-sigprof-"))
    try:
        path = out_dir / "stacks.txt"
        result = run_worker("throughput", {**params, "sample": path, "sample_hz": 1000}, env=env, timeout=timeout)
        return path.read_text(), result
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)


def profile_in_place(
    url: str,
    env: Mapping[str, str],
    client: str = "ours",
    workload: str = "user",
    duration: float = 6.0,
    concurrency: int = 16,
    method: str = "sigprof",
) -> dict[str, Any]:
    """Sample ``client`` in the real request loop and return its stage costs and function-level summary.

    ``method`` is ``sigprof`` (the worker samples itself on process CPU time)
    or ``py-spy`` (wall time while the thread is not idle; falls back to
    ``sigprof`` with a note when py-spy is missing or fails).
    """
    params: dict[str, Any] = {
        "client": client,
        "workload": workload,
        "url": url,
        "concurrency": concurrency,
        "duration": duration,
        "warmup": max(200, 4 * concurrency),
    }
    timeout = duration + 120
    note = None
    raw: str | None = None
    used = ""
    result: dict[str, Any] = {}
    if method == "py-spy":
        spy = py_spy_path()
        if spy is None:
            note = "py-spy is not installed (pip install -e '.[bench]'); used the worker's SIGPROF sampler"
        else:
            try:
                raw, result = _sample_pyspy(spy, params, env, timeout)
                used = "py-spy (1 kHz wall clock while not idle, --nonblocking, started as the worker's parent)"
                if not timed_only(raw):
                    raise WorkerError("py-spy recorded no sample inside the timed section")
            except (WorkerError, OSError) as exc:
                note = f"py-spy failed ({str(exc)[:200]}); used the worker's SIGPROF sampler"
                raw = None
    if raw is None:
        raw, result = _sample_sigprof(params, env, timeout)
        used = "SIGPROF sampler in the worker (process CPU time; ticks with the kernel clock)"
    cpu_us = 1e6 * result["cpu_s"] / max(1, result["calls"])
    timed = timed_only(raw)
    summary = stage_costs(raw, cpu_us)
    summary.update(
        {
            "client": client,
            "workload": workload,
            "concurrency": concurrency,
            "method": used,
            "note": note,
            "worker": result,
            "functions": summarise_pyspy(timed, cpu_us),
        }
    )
    return summary


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.hotpath [--client ours,floor] [--workload user] [--method sigprof]``: print the stages."""
    import argparse

    from benchmarks.procs import Stub, child_env

    parser = argparse.ArgumentParser(description="per-stage CPU in the real request loop (in place)")
    parser.add_argument("--client", default="ours", help="comma-separated: ours,floor,aiobotocore")
    parser.add_argument("--workload", default="user")
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--method", choices=("sigprof", "py-spy"), default="sigprof")
    args = parser.parse_args(argv)
    children.install()
    results = []
    try:
        with Stub("raw") as stub:
            for client in args.client.split(","):
                results.append(
                    profile_in_place(
                        stub.url, child_env(), client, args.workload, args.duration, args.concurrency, args.method
                    )
                )
    finally:
        children.stop_all()
    from benchmarks.report import render_stages

    print(render_stages(results, None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
