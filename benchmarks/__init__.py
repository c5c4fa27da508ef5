"""Benchmark harness for aiopersonalize-events (not part of the installed package).

Run it from the repository root::

    python -m benchmarks            # the full run (about 3 to 4 minutes on 2 cores)
    python -m benchmarks --quick    # about a minute

It starts a stub server (``benchmarks.stub``) on 127.0.0.1 in its own
process, runs each client (``benchmarks.worker``) in its own process,
interleaved and repeated, and prints a Markdown report; the raw figures go to
``benchmarks/results/``. Nothing here talks to anything but 127.0.0.1, and
every child process is ended when the harness exits.
"""
