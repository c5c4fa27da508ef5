"""Instructions per PutEvents call, counted by callgrind: deterministic where timings are noise.

``python -m benchmarks.instructions [--calls 2000] [--clients ours,floor] [--workloads user]``
(or ``python -m benchmarks --instructions``) starts the stub in its own
process, then runs each client's worker (``benchmarks.worker``, mode
``throughput``, ``callgrind=1``) under::

    valgrind --tool=callgrind --collect-atstart=no --toggle-collect=_operator_call

The worker makes its warm-up calls uncounted, then runs the timed section
(``calls`` calls at concurrency 16, the same code as the throughput stage)
inside ``operator.call``, whose C function ``_operator_call`` switches
counting on for exactly that section: imports, start-up, warm-up and
shutdown are not counted, and only the client's process is (the stub runs
natively, outside valgrind). Instructions per call are the counted
instructions (``Ir``) over the calls made; two runs of the same code agree
to a fraction of a percent, whatever else the machine is doing.

Needs valgrind and CPython with symbols (a stripped interpreter counts
nothing, which is reported as an error). ``operator.call`` is new in 3.11: on
3.10 the section runs inside ``sys.call_tracing`` instead (``benchmarks/worker.py``'s ``_counted``).
Under callgrind the client runs about 50 times slower: 2,000 calls of ours
take about a minute and a half on the machine the figures come from.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.procs import ROOT, WORKER, WorkerError, children, parse_result

__all__ = [
    "TOGGLE",
    "callgrind_argv",
    "count_instructions",
    "count_recorder_instructions",
    "parse_callgrind",
    "parse_callgrind_stderr",
    "run_counts",
]

# The C function whose calls callgrind counts: operator.call's (CPython 3.11+), else sys.call_tracing's (3.10,
# which has no operator.call; with no tracer set, sys.call_tracing only calls the function).
TOGGLE = "_operator_call" if sys.version_info >= (3, 11) else "sys_call_tracing"
_COLLECTED = re.compile(r"^==\d+==\s+Collected\s*:\s*([\d ]+)\s*$", re.MULTILINE)


def valgrind_path() -> str | None:
    """The valgrind executable, if installed."""
    return shutil.which("valgrind")


def parse_callgrind(text: str) -> dict[str, int]:
    """The event totals of a callgrind output file: ``{"Ir": instructions, ...}``.

    Reads the ``events:`` line (the event names) and the ``summary:`` line
    (or ``totals:``, which newer versions write at the end); raises
    ``ValueError`` when either is missing.
    """
    events: list[str] | None = None
    totals: list[int] | None = None
    summary: list[int] | None = None
    for line in text.splitlines():
        if line.startswith("events:"):
            events = line.split(":", 1)[1].split()
        elif line.startswith("summary:"):
            summary = [int(x) for x in line.split(":", 1)[1].split()]
        elif line.startswith("totals:"):
            totals = [int(x) for x in line.split(":", 1)[1].split()]
    values = summary if summary is not None else totals
    if events is None or values is None:
        raise ValueError("not a callgrind output file: no 'events:' or 'summary:'/'totals:' line")
    return dict(zip(events, values, strict=False))


def parse_callgrind_stderr(text: str) -> int | None:
    """The ``==PID== Collected : N`` figure valgrind prints on exit (the first event, Ir), or None."""
    found = _COLLECTED.findall(text)
    return int(found[-1].split()[0]) if found else None


def callgrind_argv(out_file: Path, valgrind: str = "valgrind") -> list[str]:
    """The valgrind prefix that counts only what runs inside the function ``TOGGLE`` names."""
    return [
        valgrind,
        "--tool=callgrind",
        f"--callgrind-out-file={out_file}",
        "--collect-atstart=no",
        f"--toggle-collect={TOGGLE}",
    ]


def _run_counted(args: list[str], env: Mapping[str, str], what: str, timeout: float) -> tuple[dict[str, Any], int]:
    """Run a worker under callgrind (``args`` after the valgrind prefix); its result and the instructions counted."""
    valgrind = valgrind_path()
    if valgrind is None:
        raise WorkerError("valgrind is not installed")
    out_dir = Path(tempfile.mkdtemp(prefix="bench-callgrind-"))
    out_file = out_dir / "callgrind.out"
    argv = [*callgrind_argv(out_file, valgrind), *args]
    proc = children.start(argv, env=env, cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise WorkerError(f"callgrind run of {what} timed out after {timeout:.0f}s") from None
    finally:
        children.stop(proc)
    try:
        stderr = err.decode(errors="replace")
        result = parse_result(out)
        if proc.returncode != 0 or result is None or not out_file.exists():
            raise WorkerError(f"callgrind run of {what} failed (exit {proc.returncode}): {stderr[-2000:]}")
        totals = parse_callgrind(out_file.read_text(errors="replace"))
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    instructions = totals.get("Ir", 0)
    if not instructions:
        raise WorkerError(f"callgrind counted nothing: is {TOGGLE} in this interpreter's symbols?")
    result["collected_stderr"] = parse_callgrind_stderr(stderr)
    return result, instructions


def count_recorder_instructions(
    url: str, env: Mapping[str, str], events: int = 10_000, timeout: float = 900.0
) -> dict[str, Any]:
    """Instructions per event through the recorder (worker mode ``recins``): the user's events, calls of ten."""
    args = [sys.executable, str(WORKER), "recins", f"url={url}", f"events={events}", "callgrind=1"]
    result, instructions = _run_counted(args, env, "the recorder", timeout)
    return {
        "events": events,
        "sent": result["sent"],
        "retried": result["retried"],
        "instructions": instructions,
        "instructions_per_event": instructions / events,
    }


def count_instructions(
    url: str,
    env: Mapping[str, str],
    client: str,
    workload: str = "user",
    calls: int = 2000,
    concurrency: int = 16,
    warmup: int = 100,
    timeout: float = 900.0,
) -> dict[str, Any]:
    """Run ``calls`` calls of ``client`` under callgrind against the stub at ``url``; instructions per call."""
    params = {
        "client": client,
        "workload": workload,
        "url": url,
        "concurrency": concurrency,
        "duration": 1e9,
        "max_calls": calls,
        "warmup": warmup,
        "callgrind": 1,
    }
    args = [sys.executable, str(WORKER), "throughput", *(f"{k}={v}" for k, v in params.items())]
    result, instructions = _run_counted(args, env, client, timeout)
    made = result["calls"] + result["errors"]
    return {
        "client": client,
        "workload": workload,
        "concurrency": concurrency,
        "calls": result["calls"],
        "errors": result["errors"],
        "warmup_calls": result["warmup_calls"],
        "instructions": instructions,
        "instructions_per_call": instructions / made if made else None,
        "collected_stderr": result["collected_stderr"],
    }


def run_counts(
    url: str,
    env: Mapping[str, str],
    clients: Sequence[str] = ("ours", "floor"),
    workloads: Sequence[str] = ("user",),
    calls: int = 2000,
    log: Any = None,
) -> dict[str, Any]:
    """Instruction counts for every (workload, client), and ours ÷ floor per workload."""
    runs = []
    for workload in workloads:
        for client in clients:
            result = count_instructions(url, env, client, workload, calls)
            runs.append(result)
            if log is not None:
                log(f"callgrind {client} ({workload}): {result['instructions_per_call']:,.0f} instructions per call")
    ratios = {}
    for workload in workloads:
        by = {r["client"]: r["instructions_per_call"] for r in runs if r["workload"] == workload}
        if by.get("ours") and by.get("floor"):
            ratios[workload] = by["ours"] / by["floor"]
    return {"calls": calls, "concurrency": 16, "runs": runs, "ours_vs_floor": ratios}


def main(argv: list[str] | None = None) -> int:
    """Count and print a small Markdown table."""
    from benchmarks.procs import Stub, child_env
    from benchmarks.report import render_instructions

    parser = argparse.ArgumentParser(description="instructions per PutEvents call under callgrind (client only)")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--clients", default="ours,floor")
    parser.add_argument("--workloads", default="user")
    parser.add_argument(
        "--recorder-events",
        type=int,
        default=0,
        metavar="N",
        help="also count N events through the recorder (instructions per event, and ÷ the floor's per call / 10)",
    )
    parser.add_argument("--package-root", help="count the aiopersonalize_events found in this directory")
    args = parser.parse_args(argv)
    env = child_env(Path(args.package_root).absolute()) if args.package_root else child_env()
    children.install()
    try:
        with Stub("raw") as stub:
            counts = run_counts(
                stub.url,
                env,
                args.clients.split(","),
                args.workloads.split(","),
                args.calls,
                log=lambda m: print(m, file=sys.stderr, flush=True),
            )
            recorder = (
                count_recorder_instructions(stub.url, env, args.recorder_events) if args.recorder_events else None
            )
    finally:
        children.stop_all()
    print(render_instructions(counts))
    if recorder is not None:
        line = (
            f"recorder: {recorder['instructions_per_event']:,.0f} instructions per event ({recorder['events']} events)"
        )
        floor = [r for r in counts["runs"] if r["client"] == "floor" and r["workload"] == "user"]
        if floor and floor[0]["instructions_per_call"]:
            per_event = floor[0]["instructions_per_call"] / 10
            ratio = recorder["instructions_per_event"] / per_event
            line += f"; the floor's per call / 10: {per_event:,.0f}; ratio {ratio:.2f}x"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
