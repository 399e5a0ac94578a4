"""Runs a script in a new Python process that imports the package from this checkout, for
tests of changes that last for the life of a process (ExecuTorch keeps what it built;
patched classes stay patched): the JSON its last line prints."""
import json
import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
# The package, and the tests' own helpers (small_programs.py).
PYTHONPATH = os.pathsep.join([str(TESTS.parent), str(TESTS)])


def run(script: str, *args: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": PYTHONPATH})
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
