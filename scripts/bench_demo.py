"""./scripts/bench demo [--json]: how long ./scripts/demo takes to a ready dashboard.

Runs the demo twice in a fresh state directory on free ports, with the environment already
prepared (the first-ever run also creates .venv; time that from a fresh clone, see
docs/benchmarks.md): the first run onboards Home Assistant, sets the integration up through
its config flow and builds the dashboard; the second reuses all of it. Each run is timed
from the command to the READY line, then stopped with Ctrl-C (also timed).
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def one_run(directory: Path, port: int) -> tuple[float, float]:
    started = time.monotonic()
    proc = subprocess.Popen(
        [str(ROOT / "scripts" / "demo"), "--dir", str(directory), "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    ready = None
    for line in proc.stdout:
        if line.startswith("READY "):
            ready = time.monotonic() - started
            break
    if ready is None:
        raise SystemExit(f"the demo did not become ready (exit {proc.wait()})")
    stopping = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=120)
    return ready, time.monotonic() - stopping


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bacs-demo-bench-") as tmp:
        port = free_port()
        first, first_stop = one_run(Path(tmp), port)
        second, second_stop = one_run(Path(tmp), port)
    result = {
        "first_run_ready_s": round(first, 1),
        "second_run_ready_s": round(second, 1),
        "stop_s": round(max(first_stop, second_stop), 1),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"first run (onboarding, config flow, dashboard): {first:.1f} s to ready")
        print(f"second run (reuses the state):                  {second:.1f} s to ready")
        print(f"Ctrl-C to everything stopped:                   {result['stop_s']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
