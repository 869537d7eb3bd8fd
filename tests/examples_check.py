"""Runs every scenario example in examples/ against the real server binary, as a user would run
it against the demo: a fresh server on 127.0.0.1 port 0 with a temporary data directory, each
example a separate process that fails on its first unmet check.

Usage: python tests/examples_check.py path/to/modelbay
  (needs ORT_DYLIB_PATH, MODELBAY_SMOLLM2 and MODELBAY_MINILM_ONNX, from scripts/fetch-models.sh,
  and runs under a Python with openai and numpy)
"""
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from modelbay_server import start_server

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ["finance/credit_risk.py", "medical/diagnosis_drift.py", "retail/product_search.py",
            "customer-service/support_chat.py", "education/graduation_rates.py",
            "transport/bike_demand.py"]


def main() -> None:
    binary = sys.argv[1]
    with tempfile.TemporaryDirectory() as data_dir:
        proc, address = start_server(binary, data_dir, "--llm-threads", "1")
        try:
            env = {**os.environ, "MODELBAY_SERVER": f"http://{address}", "MODELBAY_BIN": binary}
            for example in EXAMPLES:
                started = time.monotonic()
                run = subprocess.run([sys.executable, str(ROOT / "examples" / example)], env=env,
                                     capture_output=True, text=True, timeout=300)
                if run.returncode != 0:
                    sys.stdout.write(run.stdout)
                    sys.stderr.write(run.stderr)
                    raise SystemExit(f"example {example} failed (exit {run.returncode})")
                checks = run.stdout.count("  ok: ")
                print(f"{example}: {checks} checks passed in {time.monotonic() - started:.1f} s")
            # Run twice, as a user would: the examples work on a server they already used.
            rerun = subprocess.run([sys.executable, str(ROOT / "examples" / EXAMPLES[0])],
                                   env=env, capture_output=True, text=True, timeout=300)
            if rerun.returncode != 0:
                sys.stdout.write(rerun.stdout)
                sys.stderr.write(rerun.stderr)
                raise SystemExit(f"example {EXAMPLES[0]} failed on a second run")
            print(f"{EXAMPLES[0]}: passes again on the same server")
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
