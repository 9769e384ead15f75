"""The benchmark runner behind `make bench`.

    python -m bench                  # every benchmark, in order (full form, a few minutes)
    python -m bench store thumbs     # only these
    python -m bench --quick          # the short form of each (about half a minute in all)

Each benchmark runs as its own process, so one that crashes does not stop the others; the
runner exits non-zero only when a script crashed, never because a figure missed its goal.
"""

import argparse
import datetime
import os
import signal
import subprocess
import sys
import time

from bench import BENCHMARKS
from bench.common import ROOT, machine

_running = None  # the benchmark process now running


def main(argv=None):
    global _running
    parser = argparse.ArgumentParser(prog="python -m bench", description="Runs the benchmarks in bench/.")
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"benchmarks to run: {', '.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true", help="the short form of each benchmark")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)} (choose from {', '.join(BENCHMARKS)})")
    names = [name for name in BENCHMARKS if name in args.names] if args.names else BENCHMARKS
    signal.signal(signal.SIGTERM, _pass_on_and_stop)

    print(f"Seedream Studio benchmarks — {datetime.date.today().isoformat()}"
          f"{' (quick)' if args.quick else ''}")
    print(f"Machine: {machine()}")
    load = os.getloadavg()[0]
    print(f"Load average (1 min) at start: {load:.2f}"
          + ("  — something else is using the CPUs; figures will be noisy" if load > 0.5 else ""))
    print("Figures are ratios against a floor measured in the same run (lower is better).", flush=True)

    results = []
    for name in names:
        started = time.monotonic()
        command = [sys.executable, "-m", f"bench.{name}"] + (["--quick"] if args.quick else [])
        _running = subprocess.Popen(command, cwd=ROOT)
        try:
            code = _running.wait()
        except KeyboardInterrupt:
            # Ctrl+C reached the script too: give it time to remove its temp files and processes.
            print(f"\nInterrupted during {name}; waiting for it to clean up.", flush=True)
            _wait_or_kill(_running)
            return 130
        results.append((name, code, time.monotonic() - started))

    print("\n== summary ==")
    print(f"  load average (1 / 5 min) at the end: {os.getloadavg()[0]:.2f} / {os.getloadavg()[1]:.2f}")
    for name, code, seconds in results:
        print(f"  {name:<11} {'ok' if code == 0 else f'CRASHED (exit {code})':<18} {seconds:6.1f} s")
    return 0 if all(code == 0 for _, code, _ in results) else 1


def _wait_or_kill(proc, grace=30):
    try:
        proc.wait(grace)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        proc.kill()
        proc.wait()


def _pass_on_and_stop(signum, frame):
    """SIGTERM: the running benchmark gets it too (it cleans up on SIGTERM), then we stop."""
    if _running is not None and _running.poll() is None:
        _running.terminate()
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
