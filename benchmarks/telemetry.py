"""What telemetry costs per call: ``python -m benchmarks.telemetry [--reps 9] [--duration 2.5] [--instructions]``.

The user workload of the main harness (``benchmarks.worker``: PutEvents, ten
``Event`` built per call from a properties dict and a datetime, one client,
``--concurrency`` tasks, c=16 by default) against the stub
(``benchmarks.stub``), in four variants, each in a fresh process:

``without``
    the ``otel`` extra not installed: OpenTelemetry made impossible to import
    (a meta-path finder refuses it), so anything that tried would fail;
``installed``
    OpenTelemetry installed, ``instrument()`` not called (the default): the
    run checks that no ``opentelemetry`` module was loaded;
``api-only``
    ``instrument()`` called with no SDK configured: the API's no-op tracer
    and meter (what ``opentelemetry-instrument`` gives without an exporter);
``sdk``
    ``instrument()`` with the SDK: a ``TracerProvider`` with a
    ``BatchSpanProcessor`` (spans counted and discarded at export, so no
    exporter's encoding is measured) and a ``MeterProvider`` whose
    ``PeriodicExportingMetricReader`` collects every second (to a discarding
    exporter).

Repetitions are interleaved (the order rotates each repetition) and each
variant's CPU per call (process CPU time, every thread, over the timed
section) is compared with ``without`` of the same repetition: the report
gives medians and the median of those paired ratios, with their range. On a
shared machine only the paired ratios mean much. ``--instructions`` adds
instructions per call under callgrind (deterministic; main thread's timed
section only, see ``benchmarks.instructions``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["VARIANTS", "main"]

VARIANTS: dict[str, str] = {
    "without": "without the extra (OpenTelemetry not importable)",
    "installed": "extra installed, not instrumented (the default)",
    "api-only": "instrument(), no SDK configured (API no-ops)",
    "sdk": "instrument() with the SDK (batch span processor, metrics read every 1 s)",
}

_BLOCK_OTEL = """
import importlib.abc, sys

class _NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked: the otel extra is not installed)", name=name)
        return None

sys.meta_path.insert(0, _NotInstalled())
"""


# -- the child: one variant, one throughput run ------------------------------------------------------------------


def _set_up(variant: str) -> Any:
    """Prepare the variant in this process; returns what to read after the run (the SDK's span counter)."""
    if variant == "without":
        exec(_BLOCK_OTEL, {})
        return None
    if variant == "installed":
        from importlib.metadata import version

        version("opentelemetry-api")  # installed (raises if not), and not imported
        return None
    from aiopersonalize_events import otel

    if variant == "api-only":
        otel.instrument()
        return None
    from collections.abc import Sequence

    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import (
        MetricExporter,
        MetricExportResult,
        MetricsData,
        PeriodicExportingMetricReader,
    )
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Discard(SpanExporter):
        def __init__(self) -> None:
            self.spans = 0

        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            self.spans += len(spans)
            return SpanExportResult.SUCCESS

    class DiscardMetrics(MetricExporter):
        def __init__(self) -> None:
            super().__init__()
            self.exports = 0

        def export(
            self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
        ) -> MetricExportResult:
            self.exports += 1
            return MetricExportResult.SUCCESS

        def force_flush(self, timeout_millis: float = 10_000) -> bool:
            return True

        def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
            return None

    spans = Discard()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(spans))
    meter_provider = MeterProvider(
        metric_readers=[PeriodicExportingMetricReader(DiscardMetrics(), export_interval_millis=1000)]
    )
    otel.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    return (spans, tracer_provider, meter_provider)


def child(variant: str, params: dict[str, str]) -> dict[str, Any]:
    """Run one variant's throughput in this process (``--child``) and return the worker's result, annotated."""
    state = _set_up(variant)
    from benchmarks import worker

    result = worker.throughput({"client": "ours", "workload": "user", **params})
    loaded = sorted(m for m in sys.modules if m == "opentelemetry" or m.startswith("opentelemetry."))
    result["variant"] = variant
    result["opentelemetry_modules"] = len(loaded)
    if variant in ("without", "installed") and loaded:
        raise SystemExit(f"{variant}: OpenTelemetry was imported ({loaded[:3]}...)")
    if state is not None:
        spans, tracer_provider, meter_provider = state
        tracer_provider.force_flush()
        result["spans_exported"] = spans.spans
        tracer_provider.shutdown()
        meter_provider.shutdown()
    return result


# -- the parent: stub, interleaved repetitions, report ----------------------------------------------------------


def _run_child(variant: str, params: dict[str, Any], wrap: list[str] | None = None, timeout: float = 900.0) -> Any:
    from benchmarks.procs import ROOT, WorkerError, child_env, children, parse_result

    args = [*(wrap or []), sys.executable, "-m", "benchmarks.telemetry", "--child", variant]
    args += [f"{k}={v}" for k, v in params.items()]
    proc = children.start(args, env=child_env(), cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise WorkerError(f"{variant} timed out after {timeout:.0f}s") from None
    finally:
        children.stop(proc)
    result = parse_result(out)
    if proc.returncode != 0 or result is None:
        raise WorkerError(f"{variant} failed (exit {proc.returncode}): {err.decode(errors='replace')[-3000:]}")
    if result.get("errors"):
        raise WorkerError(f"{variant}: {result['errors']} calls failed: {result.get('first_error')}")
    return result


def _instructions(url: str, concurrency: int, calls: int) -> dict[str, float]:
    from benchmarks.instructions import callgrind_argv, parse_callgrind, valgrind_path

    valgrind = valgrind_path()
    if valgrind is None:
        return {}
    counts: dict[str, float] = {}
    for variant in VARIANTS:
        with tempfile.TemporaryDirectory(prefix="bench-telemetry-") as tmp:
            out_file = Path(tmp) / "callgrind.out"
            params = {
                "url": url,
                "concurrency": concurrency,
                "duration": 1e9,
                "max_calls": calls,
                "warmup": 100,
                "callgrind": 1,
            }
            result = _run_child(variant, params, wrap=callgrind_argv(out_file, valgrind))
            totals = parse_callgrind(out_file.read_text(errors="replace"))
        made = result["calls"] + result["errors"]
        counts[variant] = totals.get("Ir", 0) / made if made else float("nan")
        print(f"  callgrind {variant}: {counts[variant]:,.0f} instructions per call", file=sys.stderr, flush=True)
    return counts


def render(runs: list[dict[str, Any]], counts: dict[str, float], args: argparse.Namespace) -> str:
    """The report: CPU per call, calls/s, paired ratios to ``without``, and instructions when counted."""
    if not runs:  # --reps 0: the instruction counts alone
        base = counts.get("without") or float("nan")
        lines = [
            f"PutEvents, user workload, c={args.concurrency}: instructions per call under callgrind "
            f"({args.calls} calls, the timed section of the main thread).",
            "",
            "| variant | instructions/call | ÷ without |",
            "|---|---:|---:|",
        ]
        for variant, label in VARIANTS.items():
            if variant in counts:
                lines.append(f"| {label} | {counts[variant]:,.0f} | {counts[variant] / base:.4f} |")
        return "\n".join(lines)
    lines = [
        f"PutEvents, user workload (10 Events per call from a properties dict and a datetime), c={args.concurrency}, "
        f"{args.reps} interleaved repetitions of {args.duration:g} s per variant, against the raw stub.",
        "",
        "| variant | CPU µs/call (median) | calls/s (median) | CPU ÷ without (median of paired) | range |"
        + (" instructions/call | ÷ without |" if counts else ""),
        "|---|---:|---:|---:|---|" + ("---:|---:|" if counts else ""),
    ]
    by_rep: dict[int, dict[str, dict[str, Any]]] = {}
    for run in runs:
        by_rep.setdefault(run["rep"], {})[run["variant"]] = run
    for variant, label in VARIANTS.items():
        mine = [r for r in runs if r["variant"] == variant]
        cpu = statistics.median(r["cpu_us_per_call"] for r in mine)
        rate = statistics.median(r["calls_per_s"] for r in mine)
        ratios = [
            rep[variant]["cpu_us_per_call"] / rep["without"]["cpu_us_per_call"]
            for rep in by_rep.values()
            if variant in rep and "without" in rep
        ]
        ratio = statistics.median(ratios)
        row = f"| {label} | {cpu:.1f} | {rate:,.0f} | {ratio:.3f} | {min(ratios):.3f} to {max(ratios):.3f} |"
        if counts:
            base = counts.get("without") or float("nan")
            row += f" {counts.get(variant, float('nan')):,.0f} | {counts.get(variant, float('nan')) / base:.4f} |"
        lines.append(row)
    sdk = [r.get("spans_exported") for r in runs if r["variant"] == "sdk"]
    if sdk:
        lines += ["", f"Spans exported by the SDK variant per run: {', '.join(str(s) for s in sdk)}."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse the command line; run the child or the whole comparison."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        params = dict(item.split("=", 1) for item in argv[2:])
        print("RESULT " + json.dumps(child(argv[1], params)), flush=True)
        return 0
    parser = argparse.ArgumentParser(prog="python -m benchmarks.telemetry", description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=9, help="interleaved repetitions (default 9; 0: none)")
    parser.add_argument("--duration", type=float, default=2.5, help="seconds per timed run (default 2.5)")
    parser.add_argument("--concurrency", type=int, default=16, help="tasks making calls (default 16)")
    parser.add_argument("--warmup", type=int, default=200, help="untimed calls first (default 200)")
    parser.add_argument("--instructions", action="store_true", help="also count instructions per call (callgrind)")
    parser.add_argument("--calls", type=int, default=1000, help="calls counted under callgrind (default 1000)")
    parser.add_argument("--json", type=Path, help="write the raw runs to this file")
    args = parser.parse_args(argv)

    from benchmarks.procs import Stub

    runs: list[dict[str, Any]] = []
    names = list(VARIANTS)
    with Stub("raw") as stub:
        for rep in range(args.reps):
            order = names[rep % len(names) :] + names[: rep % len(names)]
            for variant in order:
                params = {
                    "url": stub.url,
                    "concurrency": args.concurrency,
                    "duration": args.duration,
                    "warmup": args.warmup,
                }
                result = _run_child(variant, params)
                result["rep"] = rep
                runs.append(result)
                print(
                    f"  rep {rep + 1}/{args.reps} {variant}: {result['cpu_us_per_call']:.1f} µs CPU/call, "
                    f"{result['calls_per_s']:,.0f} calls/s",
                    file=sys.stderr,
                    flush=True,
                )
        counts = _instructions(stub.url, args.concurrency, args.calls) if args.instructions else {}
    report = render(runs, counts, args)
    print(report)
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "instructions": counts}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
