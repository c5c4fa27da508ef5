"""Smoke test of ``python -m benchmarks.telemetry`` at a tiny size, so it does not rot (nothing about speed)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("opentelemetry.sdk")

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import telemetry  # noqa: E402
from benchmarks.procs import Stub  # noqa: E402


@pytest.fixture(scope="module")
def stub() -> Iterator[Stub]:
    with Stub("raw") as server:
        yield server


def test_each_variant_runs_in_its_own_process_and_the_report_pairs_them(stub: Stub) -> None:
    """Every variant makes its calls; the off variants load no OpenTelemetry; the SDK one exports a span per call."""
    runs = []
    for variant in telemetry.VARIANTS:
        result = telemetry._run_child(variant, {"url": stub.url, "concurrency": 2, "duration": 0.2, "warmup": 4})
        result["rep"] = 0
        runs.append(result)
        assert result["variant"] == variant
        assert result["calls"] > 0
        assert result["errors"] == 0
    by = {r["variant"]: r for r in runs}
    assert by["without"]["opentelemetry_modules"] == 0
    assert by["installed"]["opentelemetry_modules"] == 0
    assert by["api-only"]["opentelemetry_modules"] > 0
    sdk = by["sdk"]
    assert sdk["spans_exported"] == sdk["calls"] + sdk["warmup_calls"]
    args = argparse.Namespace(concurrency=2, reps=1, duration=0.2)
    report = telemetry.render(runs, {}, args)
    for label in telemetry.VARIANTS.values():
        assert label in report
    assert "| 1.000 |" in report  # without ÷ without
