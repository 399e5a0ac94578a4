"""Python environments for the validated toolchains of ptm-toolchain/toolchains/toolchains.json.

  install SERIES...   makes .toolchains/torch-SERIES from tools/toolchains/locks/torch-SERIES.lock
                      (every package pinned, installed with --no-deps, as tools/setup does);
                      the default series is the project's own .venv, made by tools/setup
  relock SERIES...    resolves the table's pins for SERIES afresh and writes its lock
  path SERIES         prints the python of SERIES' environment (installed or not)

Each environment holds the toolchain's torch, its ExecuTorch and torchao when it has
them, the torchvision built for that torch, and what tools/compat's models need."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
TABLE = os.path.join(REPO, "ptm-toolchain", "toolchains", "toolchains.json")
LOCKS = os.path.join(HERE, "locks")
ENVIRONMENTS = os.path.join(REPO, ".toolchains")
# What tools/compat's rows import besides torch (its requirements.txt pins the same).
EXTRA = ["numpy", "transformers==5.23.0"]
PIP = ["-m", "pip", "install", "--disable-pip-version-check", "-q", "--no-cache-dir"]
# Each environment takes about 6 GB (torch's Linux wheels are CUDA builds) and pip holds
# the downloaded wheels until it has installed them.
NEEDED_BYTES = 10 * 1024 ** 3


def table():
    with open(TABLE) as f:
        return json.load(f)


def toolchain(series):
    data = table()
    for entry in data["toolchains"]:
        if entry["series"] == series:
            return entry
    known = ", ".join(t["series"] for t in data["toolchains"])
    sys.exit(f"ptm toolchains: no toolchain {series} in {TABLE} (known: {known})")


def is_default(series):
    return table()["default"] == series


def environment(series):
    return os.path.join(REPO, ".venv") if is_default(series) else os.path.join(ENVIRONMENTS, f"torch-{series}")


def python_of(series):
    return os.path.join(environment(series), "bin", "python")


def lock_of(series):
    return os.path.join(LOCKS, f"torch-{series}.lock")


def pins(entry):
    wanted = [f"torch=={entry['torch']}", f"torchvision=={entry['torchvision']}"]
    if entry.get("executorch"):
        wanted.append(f"executorch=={entry['executorch']}")
    if entry.get("torchao"):
        wanted.append(f"torchao=={entry['torchao']}")
    return wanted + EXTRA


def check_space(where):
    os.makedirs(where, exist_ok=True)
    free = shutil.disk_usage(where).free
    if free < NEEDED_BYTES:
        sys.exit(f"ptm toolchains: {free // 1024 ** 2} MiB free under {where}; an environment needs about "
                 f"{NEEDED_BYTES // 1024 ** 3} GiB while it installs. Free some space and run again.")


def install(series):
    if is_default(series):
        subprocess.run([os.path.join(REPO, "tools", "setup")], check=True)
        return
    lock = lock_of(series)
    if not os.path.isfile(lock):
        sys.exit(f"ptm toolchains: {lock} is missing; make it with `tools/toolchains/run relock {series}`")
    venv = environment(series)
    stamp = os.path.join(venv, ".ptm-lock")
    with open(lock) as f:
        wanted = f.read()
    if os.path.isfile(python_of(series)) and os.path.isfile(stamp) and open(stamp).read() == wanted:
        return
    check_space(ENVIRONMENTS)
    started = time.time()
    print(f"ptm toolchains: making {venv} for torch {toolchain(series)['torch']} (about 6 GB, a few minutes)", file=sys.stderr)
    if os.path.exists(stamp):
        os.remove(stamp)
    if not os.path.isfile(python_of(series)):
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    subprocess.run([python_of(series), *PIP, "--no-deps", "-r", lock], check=True)
    with open(stamp, "w") as f:
        f.write(wanted)
    print(f"ptm toolchains: {venv} ready in {time.time() - started:.0f} s", file=sys.stderr)


def relock(series):
    entry = toolchain(series)
    check_space(ENVIRONMENTS)
    with tempfile.TemporaryDirectory(dir=ENVIRONMENTS) as scratch:
        venv = os.path.join(scratch, "venv")
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        python = os.path.join(venv, "bin", "python")
        subprocess.run([python, *PIP, *pins(entry)], check=True)
        frozen = subprocess.run([python, "-m", "pip", "freeze"], check=True, capture_output=True, text=True).stdout
    lines = sorted((line for line in frozen.splitlines() if line.strip()), key=str.lower)
    header = (f"# torch {series}'s validated toolchain (ptm-toolchain/toolchains/toolchains.json), every package\n"
              f"# pinned, resolved from {' '.join(pins(entry))} (`tools/toolchains/run relock {series}` resolves them again).\n")
    os.makedirs(LOCKS, exist_ok=True)
    with open(lock_of(series), "w") as f:
        f.write(header + "\n".join(lines) + "\n")
    print(f"ptm toolchains: wrote {lock_of(series)}", file=sys.stderr)


def main(argv):
    if len(argv) < 2 or argv[0] not in ("install", "relock", "path"):
        sys.exit(__doc__)
    command, series = argv[0], argv[1:]
    if command == "path":
        toolchain(series[0])
        print(python_of(series[0]))
        return
    for s in series:
        toolchain(s)
        install(s) if command == "install" else relock(s)


if __name__ == "__main__":
    main(sys.argv[1:])
