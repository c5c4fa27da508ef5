"""The benchmark suite: ``python -m benchmarks [--quick] [--instructions]`` from the repository root.

What it does, in order (each child process is ended when it finishes or the
harness exits; nothing talks to anything but 127.0.0.1):

1. stub: in a full run, times the raw-asyncio and the aiohttp.web stub under
   the floor client at c=64 (stub CPU µs per request) and keeps the cheaper;
2. throughput: PutEvents with ten events per call, for each repetition, each
   workload (``user``: the events built in each call as a user writes them,
   the headline; ``prebuilt``: events built once and reused, lighter; see
   ``benchmarks.worker``), each concurrency (16 and 64) and each client (ours,
   aiobotocore, the raw aiohttp floor), a fresh client process, interleaved
   (the client order rotates per repetition); CPU per call and calls/s,
   medians over repetitions, and ratios paired within a repetition;
3. start-up: cold ``import`` time in fresh processes (ours, its four
   dependencies together, aiobotocore, aiohttp alone) and the time from
   process start to the first completed call (user workload);
4. recorder: sustained events/s into the stub on one core with the user's
   events (built per ``record()`` from a properties dict and a datetime), CPU
   per event, memory per queued event (tracemalloc) and µs per ``record()``;
5. stage costs in place: each client sampled inside the real request loop
   (user workload, c=16; ``benchmarks.hotpath``), beside our stages timed in
   a tight loop with measured alternatives (``benchmarks.stages``);
6. with ``--instructions``: instructions per call of ours and the floor under
   callgrind, counting only the client process's timed section
   (``benchmarks.instructions``; slow, so off by default).

It prints a Markdown report on stdout and writes the raw figures to
``benchmarks/results/`` (``latest.json``, ``latest.md`` and a timestamped copy).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks import hotpath, instructions
from benchmarks.procs import (
    BENCH_DIR,
    ROOT,
    Stub,
    WorkerError,
    WorkerSkipped,
    child_env,
    children,
    run_python,
    run_worker,
)
from benchmarks.report import dependency_bound, fmt, median, paired_ratio, render, summarise_throughput, targets

__all__ = ["IMPORTS", "Plan", "main", "run_suite"]

CLIENTS = ("ours", "aiobotocore", "floor")
WORKLOADS = ("user", "prebuilt", "floats")
IMPORTS: dict[str, str] = {
    "aiopersonalize_events": "import aiopersonalize_events",
    "its four dependencies": "import aiohttp, aws_requests_auth.aws_auth, attrs, cattrs",
    "aiobotocore": "import aiobotocore.session",
    "aiohttp alone": "import aiohttp",
}
_IMPORT_CODE = "import time; t = time.perf_counter(); {stmt}; print(time.perf_counter() - t)"


class Plan:
    """What one run measures, from the command line."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.quick: bool = args.quick
        self.reps: int = args.reps or (1 if args.quick else 3)
        self.duration: float = args.duration or (1.0 if args.quick else 2.5)
        self.levels: list[int] = [int(x) for x in args.concurrency.split(",")]
        self.workloads: list[str] = [w.strip() for w in args.workloads.split(",") if w.strip()]
        unknown = [w for w in self.workloads if w not in WORKLOADS]
        if unknown:
            raise SystemExit(f"unknown workload(s) {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}")
        wanted = [c.strip() for c in args.clients.split(",") if c.strip()]
        self.skipped_clients: dict[str, str] = {}
        if "aiobotocore" in wanted and importlib.util.find_spec("aiobotocore") is None:
            wanted.remove("aiobotocore")
            self.skipped_clients["aiobotocore"] = "not installed (pip install aiobotocore)"
        self.package_root = Path(args.package_root).absolute() if args.package_root else ROOT
        self.specs: list[tuple[str, str, dict[str, str]]] = [
            (c, c, child_env(self.package_root)) for c in wanted if c in CLIENTS
        ]
        for i, root in enumerate(args.compare_root or []):
            label = "ours@" + Path(root).absolute().name
            self.specs.insert(1 + i, (label, "ours", child_env(Path(root).absolute())))
        self.compare_root: list[str] = args.compare_root or []
        self.stub: str = args.stub
        self.first_reps: int = 5 if args.quick else 9
        self.import_reps: int = 5 if args.quick else 9
        self.recorder_reps: int = 1 if args.quick else 3
        self.recorder_duration: float = 1.5 if args.quick else 2.5
        self.recorder: bool = not args.no_recorder
        self.startup: bool = not args.no_startup
        self.stages: bool = not args.no_stages
        self.stage_duration: float = args.stage_duration or (3.0 if args.quick else 6.0)
        self.stage_method: str = args.stage_method
        self.stage_clients = [c for c in ("ours", "floor", "aiobotocore") if c in wanted]
        self.instructions: bool = args.instructions
        self.instruction_calls: int = args.instruction_calls or (500 if args.quick else 2000)
        self.results_dir = Path(args.results_dir) if args.results_dir else BENCH_DIR / "results"

    def warmup_calls(self, level: int) -> int:
        """Untimed calls before the timed section: enough to open every connection and warm the code."""
        return max(50, 2 * level) if self.quick else max(100, 4 * level)

    @property
    def labels(self) -> list[str]:
        return [label for label, _, _ in self.specs]

    def env_of(self, label: str) -> dict[str, str]:
        return next(env for lab, _, env in self.specs if lab == label)


_T0 = time.monotonic()


def log(message: str) -> None:
    """Progress on stderr (stdout carries the report)."""
    print(f"[{time.monotonic() - _T0:6.1f}s] {message}", file=sys.stderr, flush=True)


def _rotate(items: Sequence[Any], by: int) -> list[Any]:
    by %= max(1, len(items))
    return list(items[by:]) + list(items[:by])


# -- machine and versions ------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    """Date, CPU, core count, Python, load and the versions of everything measured."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or "unknown"
    versions: dict[str, str | None] = {}
    for dist in ("aiopersonalize-events", "aiohttp", "aws-requests-auth", "attrs", "cattrs", "aiobotocore", "botocore"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    for dist in ("py-spy", "orjson"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[dist] = metadata.version(dist)
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu,
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "loadavg_start": os.getloadavg(),
        "versions": versions,
        "git": _git_state(),
    }


def _git_state() -> str | None:
    try:
        rev = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "aiopersonalize_events"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{rev}{' + uncommitted changes in aiopersonalize_events/' if dirty else ''}" if rev else None


# -- the phases ------------------------------------------------------------------------------------


def choose_stub(plan: Plan) -> tuple[str, list[dict[str, Any]]]:
    """Measure both stubs' CPU per request under the floor at c=64 (full runs) and pick the cheaper."""
    if plan.stub != "auto":
        return plan.stub, []
    if plan.quick:
        return "raw", []
    trials: list[dict[str, Any]] = []
    for rep in range(2):
        for kind in _rotate(("raw", "aiohttp"), rep):
            with Stub(kind) as stub:
                before = stub.stats()
                result = run_worker(
                    "throughput",
                    {
                        "client": "floor",
                        "workload": "user",
                        "url": stub.url,
                        "concurrency": 64,
                        "duration": 1.5,
                        "warmup": 256,
                    },
                    env=child_env(plan.package_root),
                )
                after = stub.stats()
            requests = after["requests"] - before["requests"]
            cpu = after["cpu_s"] - before["cpu_s"]
            us = 1e6 * cpu / requests if requests else None
            trials.append(
                {
                    "kind": kind,
                    "rep": rep,
                    "requests": requests,
                    "stub_us_per_request": us,
                    "floor_calls_per_s": result["calls_per_s"],
                    "stub_cpu_share": (us or 0) * result["calls_per_s"] / 1e6,
                }
            )
            log(f"stub {kind}: {fmt(us, 1)} µs CPU per request, floor at {fmt(result['calls_per_s'])} calls/s")

    def cost(kind: str) -> float:
        value = median(t["stub_us_per_request"] for t in trials if t["kind"] == kind)
        return float("inf") if value is None else value

    best = min(("raw", "aiohttp"), key=cost)
    return best, trials


def run_throughput(plan: Plan, stub: Stub, warnings: list[str]) -> list[dict[str, Any]]:
    """Every (repetition, workload, concurrency, client) run, interleaved."""
    runs = []
    total = plan.reps * len(plan.workloads) * len(plan.levels) * len(plan.specs)
    done = 0
    for rep in range(plan.reps):
        order = _rotate(plan.specs, rep)
        for workload in plan.workloads:
            for level in plan.levels:
                for label, client, env in order:
                    runs.append(_throughput_run(plan, stub, warnings, rep, workload, level, label, client, env))
                    done += 1
                    result = runs[-1]
                    log(
                        f"[{done}/{total}] {workload:8s} {label:12s} c={level:<3d} {fmt(result['calls_per_s'])} "
                        f"calls/s, {fmt(result['cpu_us_per_call'])} µs CPU/call, p99 {fmt(result['p99_ms'], 1)} ms"
                    )
    return runs


def _throughput_run(
    plan: Plan,
    stub: Stub,
    warnings: list[str],
    rep: int,
    workload: str,
    level: int,
    label: str,
    client: str,
    env: dict[str, str],
) -> dict[str, Any]:
    before = stub.stats()
    params = {
        "client": client,
        "workload": workload,
        "url": stub.url,
        "concurrency": level,
        "duration": plan.duration,
        "warmup": plan.warmup_calls(level),
    }
    result = run_worker("throughput", params, env=env, timeout=plan.duration + 180)
    after = stub.stats()
    requests = after["requests"] - before["requests"]
    stub_us = 1e6 * (after["cpu_s"] - before["cpu_s"]) / requests if requests else None
    result.update(
        {
            "label": label,
            "rep": rep,
            "stub_requests": requests,
            "stub_us_per_request": stub_us,
            "stub_cpu_share": (stub_us or 0) * result["calls_per_s"] / 1e6,
        }
    )
    where = f"{label} {workload} c={level} rep {rep}"
    expected = result["warmup_calls"] + result["calls"] + result["errors"]
    if result["errors"] or result["warmup_errors"]:
        warnings.append(f"{where}: {result['errors']} errors ({result['first_error']})")
    elif requests != expected:
        warnings.append(f"{where}: stub saw {requests} requests, client made {expected}")
    elif after["events"] - before["events"] != 10 * expected:
        warnings.append(f"{where}: stub saw {after['events'] - before['events']} events, client sent {10 * expected}")
    if result["stub_cpu_share"] > 0.8:
        warnings.append(f"{where}: the stub was busy {result['stub_cpu_share']:.0%} of the time")
    return result


def run_imports(plan: Plan) -> dict[str, Any]:
    """Cold import times in fresh processes, interleaved; ratios paired per repetition."""
    env = child_env(plan.package_root)
    names = [n for n in IMPORTS if n != "aiobotocore" or "aiobotocore" not in plan.skipped_clients]
    # (label, statement, environment): prototypes given with --compare-root are imported too
    cases = [(n, IMPORTS[n], env) for n in names]
    cases += [
        (f"aiopersonalize_events ({label})", IMPORTS["aiopersonalize_events"], e)
        for label, c, e in plan.specs
        if label.startswith("ours@")
    ]
    for _name, stmt, case_env in cases:  # untimed: write bytecode caches, warm the file cache
        run_python(_IMPORT_CODE.format(stmt=stmt), env=case_env)
    samples: dict[str, list[float]] = {name: [] for name, _, _ in cases}
    ratios = []
    for rep in range(plan.import_reps):
        got = {}
        for name, stmt, case_env in _rotate(cases, rep):
            out, _ = run_python(_IMPORT_CODE.format(stmt=stmt), env=case_env)
            got[name] = float(out.strip().splitlines()[-1])
            samples[name].append(got[name])
        ratios.append(got["aiopersonalize_events"] / got["its four dependencies"])
    _, trace = run_python(
        "import aiohttp, aws_requests_auth.aws_auth, attrs, cattrs\nimport aiopersonalize_events",
        env={**env, "PYTHONPROFILEIMPORTTIME": "1"},
    )
    best = {n: min(v) for n, v in samples.items() if v}
    return {
        "median_s": {n: median(v) for n, v in samples.items()},
        "best_s": best,
        "samples_s": samples,
        "ours_vs_deps": median(ratios),
        "ours_vs_deps_best": best["aiopersonalize_events"] / best["its four dependencies"],
        "added_by_ours": _import_trace_after_deps(trace),
    }


def _import_trace_after_deps(trace: str) -> dict[str, Any]:
    """From ``-X importtime`` of deps-then-ours: what importing ours adds (modules not loaded by the deps)."""
    rows = []
    for line in trace.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        parts = line[len("import time:") :].split("|")
        if len(parts) != 3:
            continue
        rows.append((int(parts[0]), int(parts[1]), parts[2].rstrip()[1:]))  # keep the indentation
    start = next((i for i, r in enumerate(rows) if r[2].strip() == "aiopersonalize_events"), None)
    if start is None:
        return {}
    # -X importtime prints a package after its children: ours' children come just before its line
    depth = len(rows[start][2]) - len(rows[start][2].lstrip())
    block = [rows[start]]
    for row in reversed(rows[:start]):
        if len(row[2]) - len(row[2].lstrip()) <= depth:
            break
        block.append(row)
    total_us = rows[start][1]
    top = sorted(block, key=lambda r: -r[0])[:12]
    return {
        "total_ms": total_us / 1000,
        "top_self_ms": [{"module": r[2].strip(), "self_ms": r[0] / 1000} for r in top],
    }


def run_first_call(plan: Plan, stub: Stub) -> dict[str, Any]:
    """Process start to first completed call, per client, interleaved; ratios paired per repetition."""
    for _label, client, env in plan.specs:  # untimed: bytecode caches and the file cache
        run_worker("first", {"client": client, "url": stub.url, "t0": time.monotonic()}, env=env)
    runs = []
    for rep in range(plan.first_reps):
        for label, client, env in _rotate(plan.specs, rep):
            t0 = time.monotonic()
            params = {"client": client, "workload": "user", "url": stub.url, "t0": repr(t0)}
            result = run_worker("first", params, env=env)
            result.update({"label": label, "rep": rep})
            runs.append(result)
    summary: dict[str, Any] = {"runs": runs, "median": {}}
    for label in plan.labels:
        mine = [r for r in runs if r["label"] == label]
        summary["median"][label] = {
            key: median(r[key] for r in mine)
            for key in ("since_spawn_s", "interpreter_s", "client_setup_s", "first_call_s", "max_rss_kb")
        }
    summary["best"] = {
        label: {
            key: min(r[key] for r in runs if r["label"] == label)
            for key in ("since_spawn_s", "interpreter_s", "client_setup_s", "first_call_s")
        }
        for label in plan.labels
    }
    summary["ours_vs_floor"] = paired_ratio(runs, "since_spawn_s", "ours", "floor", {})
    summary["ours_vs_aiobotocore"] = paired_ratio(runs, "since_spawn_s", "ours", "aiobotocore", {})
    best = summary["best"]
    if "ours" in best and "floor" in best:
        summary["ours_vs_floor_best"] = best["ours"]["since_spawn_s"] / best["floor"]["since_spawn_s"]
    return summary


def run_recorder(plan: Plan, stub: Stub) -> dict[str, Any]:
    """The recorder's sustained rate, memory per queued event and record() cost; skipped if it does not exist."""
    env = child_env(plan.package_root)
    out: dict[str, Any] = {"runs": []}
    try:
        for rep in range(plan.recorder_reps):
            for prebuilt in _rotate((0, 1), rep):
                before = stub.stats()
                result = run_worker(
                    "recorder",
                    {"url": stub.url, "duration": plan.recorder_duration, "prebuilt": prebuilt},
                    env=env,
                    timeout=plan.recorder_duration + 120,
                )
                after = stub.stats()
                result["stub_events"] = after["events"] - before["events"]
                result["rep"] = rep
                out["runs"].append(result)
                log(
                    f"recorder ({'pre-built events' if prebuilt else 'events built per record'}): "
                    f"{fmt(result['events_per_s'])} events/s, {fmt(result['cpu_us_per_event'], 1)} µs CPU/event"
                )
        out["memory"] = run_worker("recmem", {"url": stub.url, "events": 5000}, env=env)
        out["micro"] = run_worker(
            "recmicro", {"url": stub.url, "events": 1000, "repeats": 9 if plan.quick else 25}, env=env
        )
    except WorkerSkipped as exc:
        log(f"recorder skipped: {exc}")
        return {"skipped": str(exc)}
    for prebuilt in (False, True):
        mine = [r for r in out["runs"] if r["prebuilt"] == prebuilt]
        out["built" if not prebuilt else "prebuilt"] = {
            key: median(r[key] for r in mine)
            for key in ("events_per_s", "cpu_us_per_event", "dropped", "failed", "max_rss_kb")
        }
    out["stub_events_match"] = all(r["stub_events"] == r["sent_total"] for r in out["runs"])
    return out


def _recorder_vs_floor(results: dict[str, Any]) -> float | None:
    """The recorder's CPU per event over the floor's (its CPU per call at c=16, user workload, over ten)."""
    rec = results.get("recorder") or {}
    floor = next(
        (
            r
            for r in results.get("throughput_summary", [])
            if r["label"] == "floor" and r["concurrency"] == 16 and r["workload"] == "user"
        ),
        None,
    )
    built = rec.get("built") or {}
    if not floor or not floor.get("cpu_us_per_call") or not built.get("cpu_us_per_event"):
        return None
    return float(built["cpu_us_per_event"]) / (float(floor["cpu_us_per_call"]) / 10)


def run_stages(plan: Plan) -> dict[str, Any]:
    """Our stages timed in a tight loop, with the measured alternatives (``benchmarks.stages``)."""
    code = "import sys; from benchmarks.stages import main; sys.exit(main({}))".format(
        "['--quick']" if plan.quick else "[]"
    )
    out, _ = run_python(code, env=child_env(plan.package_root), timeout=300)
    for line in reversed(out.splitlines()):
        if line.startswith("RESULT "):
            result: dict[str, Any] = json.loads(line[7:])
            return result
    raise WorkerError("benchmarks.stages printed no result")


def run_inplace(plan: Plan, stub: Stub, warnings: list[str]) -> list[dict[str, Any]]:
    """Each client sampled inside the real request loop (user workload, c=16): µs per call by stage."""
    out = []
    env = child_env(plan.package_root)
    for client in plan.stage_clients:
        try:
            profile = hotpath.profile_in_place(
                stub.url, env, client, "user", plan.stage_duration, 16, plan.stage_method
            )
        except WorkerError as exc:
            warnings.append(f"in-place profile of {client} failed: {exc}")
            continue
        if profile.get("note"):
            warnings.append(f"in-place profile of {client}: {profile['note']}")
        out.append(profile)
        log(f"in place: {client}, {profile['samples']} samples, {fmt(profile['cpu_us_per_call'])} µs CPU/call")
    return out


def run_instructions(plan: Plan, stub: Stub) -> dict[str, Any]:
    """Instructions per call of ours and the floor under callgrind (``benchmarks.instructions``)."""
    clients = [c for c in ("ours", "floor") if c in plan.labels]
    return instructions.run_counts(
        stub.url, child_env(plan.package_root), clients, ["user"], plan.instruction_calls, log=log
    )


# -- the driver ------------------------------------------------------------------------------------------


def _phase(name: str, fn: Callable[[], Any], warnings: list[str]) -> Any:
    log(f"{name}...")
    try:
        return fn()
    except WorkerError as exc:
        warnings.append(f"{name} failed: {exc}")
        log(f"{name} failed: {exc}")
        return None


def run_suite(plan: Plan, command: str = "python -m benchmarks") -> dict[str, Any]:
    """Run every phase of ``plan`` and return the results (the report's data)."""
    started = time.monotonic()
    warnings: list[str] = []
    results: dict[str, Any] = {
        "command": command,
        "machine": machine_info(),
        "plan": {
            "quick": plan.quick,
            "reps": plan.reps,
            "duration": plan.duration,
            "levels": plan.levels,
            "workloads": plan.workloads,
            "clients": plan.labels,
            "package_root": str(plan.package_root),
            "compare_root": plan.compare_root,
            "first_reps": plan.first_reps,
            "import_reps": plan.import_reps,
        },
        "skipped_clients": plan.skipped_clients,
        "warnings": warnings,
    }
    stub_kind, trials = choose_stub(plan)
    results["stub"], results["stub_trials"] = stub_kind, trials
    log(f"stub: {stub_kind}")
    with Stub(stub_kind, env=child_env(plan.package_root)) as stub:
        runs = run_throughput(plan, stub, warnings)
        results["throughput_runs"] = runs
        results["throughput_summary"] = summarise_throughput(runs, plan.labels, plan.levels, plan.workloads)
        if plan.startup:
            results["imports"] = _phase("import times", lambda: run_imports(plan), warnings)
            results["first_call"] = _phase("time to first call", lambda: run_first_call(plan, stub), warnings)
            if results["first_call"]:
                results["first_call"]["dependency_bound"] = dependency_bound(results["imports"], results["first_call"])
        if plan.recorder:
            results["recorder"] = _phase("recorder", lambda: run_recorder(plan, stub), warnings)
        if plan.stages:
            results["inplace"] = _phase("stage costs in place", lambda: run_inplace(plan, stub, warnings), warnings)
        if plan.instructions:
            results["instructions"] = _phase(
                "instruction counts (callgrind)", lambda: run_instructions(plan, stub), warnings
            )
    if plan.stages:
        results["stages"] = _phase("stages in a tight loop", lambda: run_stages(plan), warnings)
    if results.get("recorder") and "skipped" not in results["recorder"]:
        results["recorder"]["cpu_per_event_vs_floor"] = _recorder_vs_floor(results)
    results["targets"] = targets(_measured(results))
    results["elapsed_s"] = time.monotonic() - started
    results["loadavg_end"] = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return results


def _measured(results: dict[str, Any]) -> dict[str, float | None]:
    by = {(r["label"], r["concurrency"]): r for r in results.get("throughput_summary", []) if r["workload"] == "user"}
    rec = results.get("recorder") or {}
    return {
        "cpu_c16": (by.get(("ours", 16)) or {}).get("cpu_vs_floor"),
        "cpu_c64": (by.get(("ours", 64)) or {}).get("cpu_vs_floor"),
        "calls_c16": (by.get(("ours", 16)) or {}).get("calls_vs_aiobotocore"),
        "calls_c64": (by.get(("ours", 64)) or {}).get("calls_vs_aiobotocore"),
        "import": (results.get("imports") or {}).get("ours_vs_deps_best"),
        "first_call": (results.get("first_call") or {}).get("ours_vs_floor_best"),
        "recorder_eps": (rec.get("built") or {}).get("events_per_s"),
        "record_us": (rec.get("micro") or {}).get("record_us"),
        "bytes_per_event": (rec.get("memory") or {}).get("bytes_per_queued_event"),
    }


def write_results(results: dict[str, Any], markdown: str, directory: Path) -> Path:
    """Write ``latest.json``, ``latest.md`` and a timestamped JSON copy; return the timestamped path."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = directory / f"bench-{stamp}.json"
    text = json.dumps(results, indent=1, default=str)
    path.write_text(text)
    (directory / "latest.json").write_text(text)
    (directory / "latest.md").write_text(markdown)
    return path


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark aiopersonalize-events against aiobotocore and the raw aiohttp floor (127.0.0.1 only).",
    )
    parser.add_argument("--quick", action="store_true", help="one repetition, shorter runs: about a minute")
    parser.add_argument("--reps", type=int, help="repetitions of the throughput matrix (default 3, quick 1)")
    parser.add_argument("--duration", type=float, help="seconds per timed throughput run (default 2.5, quick 1)")
    parser.add_argument("--concurrency", default="16,64", help="comma-separated concurrency levels")
    parser.add_argument(
        "--workloads",
        default="user,prebuilt",
        help="comma-separated: user (events built per call, the headline), prebuilt (reused events), "
        "floats (the first harness's)",
    )
    parser.add_argument("--clients", default=",".join(CLIENTS), help="comma-separated: ours,aiobotocore,floor")
    parser.add_argument("--stub", choices=("auto", "raw", "aiohttp"), default="auto")
    parser.add_argument("--package-root", help="measure the aiopersonalize_events found in this directory")
    parser.add_argument(
        "--compare-root",
        action="append",
        help="also run 'ours@DIRNAME': the aiopersonalize_events in that directory (a prototype); repeatable",
    )
    parser.add_argument("--no-startup", action="store_true", help="skip import and first-call timing")
    parser.add_argument("--no-recorder", action="store_true", help="skip the recorder benchmarks")
    parser.add_argument("--no-stages", action="store_true", help="skip the stage costs (in place and tight loop)")
    parser.add_argument("--stage-duration", type=float, help="seconds per in-place profile (default 6, quick 3)")
    parser.add_argument(
        "--stage-method",
        choices=("sigprof", "py-spy"),
        default="sigprof",
        help="in-place sampler: the worker's own SIGPROF sampler on CPU time (default) or py-spy (wall time)",
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="also count instructions per call of ours and the floor under callgrind (slow: minutes)",
    )
    parser.add_argument("--instruction-calls", type=int, help="calls counted per client (default 2000, quick 500)")
    parser.add_argument("--results-dir", help="where to write the JSON (default benchmarks/results)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the suite, print the report, write the results."""
    args = build_parser().parse_args(argv)
    plan = Plan(args)
    command = "python -m benchmarks " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    children.install()
    try:
        results = run_suite(plan, command.strip())
    except KeyboardInterrupt:
        log("interrupted; stopping child processes")
        return 130
    finally:
        children.stop_all()
    markdown = render(results)
    path = write_results(results, markdown, plan.results_dir)
    print(markdown)
    log(f"results: {path}")
    return 0
