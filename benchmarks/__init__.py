"""Benchmark harness for aiopersonalize-events (not part of the installed package).

Run it from the repository root::

    python -m benchmarks                  # the full run (about 5 minutes on 2 cores)
    python -m benchmarks --quick          # about 1.5 minutes
    python -m benchmarks --instructions   # adds callgrind instruction counts (a few minutes more)

It starts a stub server (``benchmarks.stub``) on 127.0.0.1 in its own
process, runs each client (``benchmarks.worker``) in its own process,
interleaved and repeated, and prints a Markdown report; the raw figures go to
``benchmarks/results/``. Nothing here talks to anything but 127.0.0.1, and
every child process is ended when the harness exits.

The parts also run alone: ``python -m benchmarks.hotpath`` (stage costs in
place), ``python -m benchmarks.instructions`` (instructions per call under
callgrind), ``python -m benchmarks.stages`` (stages in a tight loop),
``python -m benchmarks.recorder_emulator`` and
``python -m benchmarks.emulator_overhead`` (against the built-in emulator).
"""
