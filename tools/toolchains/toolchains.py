"""Python environments for the validated toolchains of ptm-toolchain/toolchains/toolchains.json.

  install SERIES...   makes .toolchains/torch-SERIES from tools/toolchains/locks/torch-SERIES.lock
                      (every package pinned, installed with --no-deps, as tools/setup does);
                      the default series is the project's own .venv, made by tools/setup
  relock SERIES...    resolves the table's pins for SERIES afresh and writes its lock
  path SERIES         prints the python of SERIES' environment (installed or not)
  table               builds a few models (measure.py) in every format each toolchain makes,
                      with that toolchain's python, and writes the Toolchains section of
                      docs/compatibility.md; a toolchain whose environment is missing is
                      installed (its lock written first when missing) only when the disk holds
                      it and the builds, else its line says it was not measured and why

Each environment holds the toolchain's torch, its ExecuTorch and torchao when it has
them, the torchvision built for that torch, and what tools/compat's models need."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "compat"))
from table import FORMATS, splice, toolchains_section  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
TABLE = os.path.join(REPO, "ptm-toolchain", "toolchains", "toolchains.json")
LOCKS = os.path.join(HERE, "locks")
ENVIRONMENTS = os.path.join(REPO, ".toolchains")
# What tools/compat's rows import besides torch (its requirements.txt pins the same).
EXTRA = ["numpy", "transformers==5.23.0"]
# ruamel.yaml's C loader, for ExecuTorch's import (tools/requirements.txt says why).
YAML_LOADER = "ruamel.yaml.clib==0.2.15"
PIP = ["-m", "pip", "install", "--disable-pip-version-check", "-q", "--no-cache-dir"]
# Each environment takes about 6 GB (torch's Linux wheels are CUDA builds) and pip holds
# the downloaded wheels until it has installed them.
NEEDED_BYTES = 10 * 1024 ** 3
# What `table` leaves free besides for its builds (a target directory per toolchain).
BUILD_BYTES = 4 * 1024 ** 3
WORK = os.path.join(REPO, "target", "compat", "toolchains")
DOC = os.path.join(REPO, "docs", "compatibility.md")


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
        wanted.append(YAML_LOADER)
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


def installed(series):
    if is_default(series):
        return os.path.isfile(python_of(series))
    stamp = os.path.join(environment(series), ".ptm-lock")
    return (os.path.isfile(python_of(series)) and os.path.isfile(lock_of(series)) and os.path.isfile(stamp)
            and open(stamp).read() == open(lock_of(series)).read())


def prepare(series):
    """Installs SERIES' environment when it is missing and the disk holds it (relocking
    first when its lock is missing); returns why it is not usable, or None."""
    if is_default(series) or installed(series):
        install(series)
        return None
    os.makedirs(ENVIRONMENTS, exist_ok=True)
    free = shutil.disk_usage(ENVIRONMENTS).free
    if free < NEEDED_BYTES + BUILD_BYTES:
        if os.path.isfile(lock_of(series)):
            missing, fix = "its environment is not installed", f"`tools/toolchains/run install {series}`"
        else:
            missing, fix = "neither its environment nor its lock exists", f"`tools/toolchains/run relock {series}`, then `install {series}`"
        return (f"{missing} and the disk had {free / 1024 ** 3:.1f} GiB free, short of the "
                f"{(NEEDED_BYTES + BUILD_BYTES) // 1024 ** 3} GiB that one (about 6 GB) and its builds take; {fix} makes it")
    if not os.path.isfile(lock_of(series)):
        relock(series)
    install(series)
    return None


def measure(series, formats):
    """The rows measure.py builds in SERIES' environment, and the versions it found."""
    work = os.path.join(WORK, f"torch-{series}")
    out = os.path.join(work, "results.json")
    os.makedirs(work, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PTM_PYTHON_PTL", "PTM_PYTHON_PTE", "PTM_ALLOW_UNTESTED_TORCH")}
    subprocess.run([python_of(series), os.path.join(HERE, "measure.py"), work, out, *formats], check=True, env=env)
    with open(out) as f:
        return json.load(f)


def write_table():
    import platform
    started = time.perf_counter()
    data = table()
    entries = data["toolchains"]
    measured, unmeasured = {}, {}
    for entry in entries:
        series = entry["series"]
        formats = [f for f in FORMATS if f not in entry.get("cannot", {})]
        if not formats:
            continue
        why = prepare(series)
        if why:
            unmeasured[series] = {f: why for f in formats}
            print(f"ptm toolchains: torch {series} not measured: {why}", file=sys.stderr)
            continue
        print(f"ptm toolchains: torch {series}: building {', '.join('.' + f for f in formats)}", file=sys.stderr, flush=True)
        measured[series] = measure(series, formats)["rows"]
    seconds = time.perf_counter() - started
    text = toolchains_section(entries, measured, unmeasured, time.strftime("%Y-%m-%d"),
                              f"{platform.machine()}, {os.cpu_count()} cores", seconds, data.get("unpaired"))
    doc = open(DOC).read() if os.path.exists(DOC) else "# Compatibility\n"
    with open(DOC, "w") as f:
        f.write(splice(doc, text))
    print(f"ptm toolchains: wrote the Toolchains section of {os.path.relpath(DOC, REPO)} in {seconds / 60:.0f} min", file=sys.stderr)


def main(argv):
    if argv == ["table"]:
        write_table()
        return
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
