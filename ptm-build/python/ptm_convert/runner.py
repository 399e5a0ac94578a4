"""The runner that verifies .pte files in ExecuTorch's native runtime (ptm_executorch_runner.cpp
over the same shim the `ptm` runtime links, compiled by the same recipe), kept like a cache entry:

    <runner_dir>/executorch-<version>-<shim digest>/
        ptm_executorch_runner          the binary
        ptm_executorch_runner.sha256   its sha256, written after it is in place
        lock                           held (flock) while it is compiled

It is checked before each use (a regular, executable file matching its recorded hash) and
compiled again when it is not, or when it cannot be started: a truncated, replaced or
emptied runner would otherwise fail every later .pte conversion with a message blaming
the model. Models converting at once, and builds sharing the directory (PTM_TOOLCHAIN_DIR, else
the cache), compile it once:
whoever holds the lock compiles, the others find it done."""
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
from typing import Any, Optional

from .common import Failure, log, write_atomic

# The runner's main, compiled with every file of ptm-toolchain's ExecuTorch shim.
RUNNER_MAIN = "ptm_executorch_runner.cpp"
# How C++ is compiled against ExecuTorch, for every caller (ptm-toolchain/executorch/recipe.json).
RECIPE = "recipe.json"
NAME = "ptm_executorch_runner"
# The dynamic loader's status when the binary starts but a library it links is missing.
LOADER_FAILED = 127


def source_places(here: Optional[str] = None) -> list[str]:
    """Where the runner's C++ and the recipe are: beside the package's modules, where ptm-build
    writes them, else in the checkout the package is installed from (the runner's main in
    ptm-build/executorch/, the shim it compiles and the recipe in ptm-toolchain/executorch/, the
    header of the types both runtimes' shims share in ptm-toolchain/include/)."""
    here = here or os.path.dirname(os.path.abspath(__file__))
    if os.path.isfile(os.path.join(here, RUNNER_MAIN)):
        return [here]
    checkout = os.path.join(here, "..", "..", "..")
    return [os.path.normpath(os.path.join(checkout, "ptm-build", "executorch")),
            os.path.normpath(os.path.join(checkout, "ptm-toolchain", "executorch")),
            os.path.normpath(os.path.join(checkout, "ptm-toolchain", "include"))]


def missing(what: str, places: list[str]) -> Failure:
    return Failure("verify", f"{what} is in none of {', '.join(places)}: neither beside ptm_convert's modules nor in "
                             "a ptm checkout around them",
                   "install ptm_convert from a checkout of ptm (pip install -e ptm-build/python)")


def shim_sources(here: Optional[str] = None) -> list[str]:
    """The runner's C++: every header and source found with its main (see source_places), in
    name order, so a file added to the shim is compiled and hashed without naming it here."""
    places = source_places(here)
    sources = sorted(os.path.join(d, name) for d in places if os.path.isdir(d) for name in os.listdir(d)
                     if name.endswith((".h", ".cpp")))
    if not any(os.path.basename(path) == RUNNER_MAIN for path in sources):
        raise missing(f"the C++ of ExecuTorch's runner ({RUNNER_MAIN})", places)
    return sources


def recipe_path(here: Optional[str] = None) -> str:
    """The recipe's file, found like the runner's C++."""
    places = source_places(here)
    for d in places:
        if os.path.isfile(os.path.join(d, RECIPE)):
            return os.path.join(d, RECIPE)
    raise missing(f"the recipe that compiles ExecuTorch's runner ({RECIPE})", places)


def load_recipe(path: Optional[str] = None) -> dict[str, Any]:
    with open(path or recipe_path()) as f:
        recipe: dict[str, Any] = json.load(f)
    return recipe


def compile_command(compiler: str, executorch_dir: str, sources: list[str], output: str,
                    recipe: Optional[dict[str, Any]] = None) -> list[str]:
    """The command that compiles `sources` (headers are found through their directories, the .cpp
    files are compiled) against the ExecuTorch in `executorch_dir` (with include/ and lib/) into
    the program `output`, by the recipe the runtime's build script uses too. The optional
    libraries are linked when `executorch_dir` has them."""
    recipe = recipe if recipe is not None else load_recipe()
    lib = os.path.join(executorch_dir, recipe["lib_dir"]["path"])
    source_dirs = list(dict.fromkeys(os.path.dirname(path) for path in sources))
    command = [compiler, f"-std={recipe['std']['value']}", f"-O{recipe['opt_level']['value']}"]
    if not recipe["warnings"]["value"]:
        command.append("-w")
    command += [f"-D{define['name']}" for define in recipe["defines"]]
    command += [f"-I{d}" for d in source_dirs]
    command += [f"-I{os.path.join(executorch_dir, include['path'])}" for include in recipe["include_dirs"]]
    command += [path for path in sources if path.endswith(".cpp")]
    command += ["-o", output, f"-L{lib}"]
    command += [f"-l{library['name']}" for library in recipe["libraries"]
                if not library["optional"] or os.path.exists(os.path.join(lib, f"lib{library['name']}.so"))]
    command += [f"-l{library['name']}" for library in recipe["system_libraries"]]
    if recipe["rpath"]["value"]:
        # The shim loads the backend and kernel libraries itself, through the rpath.
        command.append(f"-Wl,-rpath,{lib}")
    return command


class Runner:
    """The runner of this ExecuTorch and shim source, for model `model`'s messages."""

    def __init__(self, model, runner_dir):
        from executorch import version
        # A namespace package: its directory comes from a module in it.
        self.package = os.path.dirname(os.path.abspath(version.__file__))
        self.sources = shim_sources()
        self.recipe_file = recipe_path()
        digest = hashlib.sha256()
        for path in [*self.sources, self.recipe_file]:
            with open(path, "rb") as f:
                digest.update(f.read())
        self.model = model
        self.directory = os.path.join(runner_dir, f"executorch-{version.__version__}-{digest.hexdigest()[:16]}")
        self.path = os.path.join(self.directory, NAME)
        self.record = self.path + ".sha256"

    def run(self, arguments):
        """Runs the runner on `arguments`; compiles it first when it is missing or
        damaged, and again (once) when it cannot be started."""
        self.ensure()
        done = self.start(arguments)
        if done is None:
            self.ensure(rebuild=True)
            done = self.start(arguments)
            if done is None:
                raise Failure("verify", f"ExecuTorch's runner {self.path} cannot be started even after compiling it "
                                        f"again: {self.why_not_started}",
                              f"delete {self.directory} and build again; check that the executorch package at "
                              f"{self.package} is complete (lib/ and include/)")
        return done

    def start(self, arguments):
        """The finished process, or None when the runner itself could not start."""
        try:
            done = subprocess.run([self.path, *arguments], capture_output=True, text=True)
        except OSError as e:
            self.why_not_started = f"{type(e).__name__}: {e}"
            return None
        if done.returncode == LOADER_FAILED:
            self.why_not_started = done.stderr.strip()[-500:] or f"status {LOADER_FAILED}"
            return None
        return done

    def problem(self):
        """Why the runner on disk cannot be used, or None."""
        if not os.path.isfile(self.path):
            return "is missing" if not os.path.lexists(self.path) else "is not a regular file"
        if not os.access(self.path, os.X_OK):
            return "is not executable"
        try:
            with open(self.record) as f:
                recorded = f.read().strip()
        except OSError:
            return "has no recorded hash"
        if sha256_of(self.path) != recorded:
            return "does not match its recorded hash"
        return None

    def ensure(self, rebuild=False):
        """A verified runner at self.path; with `rebuild`, a newly compiled one unless
        another process compiled it while this one waited for the lock."""
        if not rebuild and self.problem() is None:
            return
        os.makedirs(self.directory, exist_ok=True)
        seen = self.recorded()
        with open(os.path.join(self.directory, "lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            problem = self.problem()
            if problem is None and (not rebuild or self.recorded() != seen):
                return
            if problem is None:
                log(self.model, f"ExecuTorch's runner {self.path} could not be started; compiling it again")
            elif problem == "is missing":
                log(self.model, f"compiling ExecuTorch's runner (once per ExecuTorch version) into {self.directory}")
            else:
                log(self.model, f"ExecuTorch's runner {self.path} {problem}; compiling it again")
            self.compile()

    def recorded(self):
        try:
            with open(self.record) as f:
                return f.read().strip()
        except OSError:
            return None

    def compile(self):
        compiler = os.environ.get("CXX", "c++")
        temporary = f"{self.path}.{os.getpid()}"
        command = compile_command(compiler, self.package, self.sources, temporary, load_recipe(self.recipe_file))
        try:
            done = subprocess.run(command, capture_output=True, text=True)
        except FileNotFoundError:
            raise Failure("verify", f"no C++ compiler `{compiler}` to build ExecuTorch's runner {self.path}, which "
                                    f"verifies the .pte", "install one (Debian: apt-get install g++) or set CXX")
        if done.returncode != 0:
            raise Failure("verify", f"compiling ExecuTorch's runner {self.path} failed:\n{done.stderr[-2000:]}",
                          f"check that the executorch package at {self.package} is complete (lib/ and include/)")
        digest = sha256_of(temporary)
        # Whatever stands in the way goes: a directory cannot be replaced by a file.
        if os.path.isdir(self.path) and not os.path.islink(self.path):
            shutil.rmtree(self.path)
        os.replace(temporary, self.path)
        # Recorded last: a runner replaced but not yet recorded counts as damaged.
        write_atomic(self.record, digest + "\n")


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
