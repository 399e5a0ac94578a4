"""The runner is compiled by the one ExecuTorch recipe (ptm-toolchain/executorch/recipe.json),
which the runtime's build script and the ARM check use too."""
import json
import os
from pathlib import Path

from ptm_convert import runner

CHECKOUT = Path(__file__).resolve().parents[3]


def executorch_dir(root: Path, threadpool: bool) -> str:
    (root / "include").mkdir(parents=True)
    (root / "lib").mkdir()
    (root / "lib" / "libexecutorch.so").write_bytes(b"")
    if threadpool:
        (root / "lib" / "libexecutorch_threadpool.so").write_bytes(b"")
    return str(root)


def test_the_recipe_is_the_one_ptm_toolchain_embeds() -> None:
    assert Path(runner.recipe_path()) == CHECKOUT / "ptm-toolchain" / "executorch" / "recipe.json"
    recipe = runner.load_recipe()
    assert recipe["std"]["value"] == "c++17" and recipe["opt_level"]["value"] == 2
    assert {d["name"] for d in recipe["defines"]} == {"C10_USING_CUSTOM_GENERATED_MACROS", "ET_EVENT_TRACER_ENABLED"}


def test_the_command_has_every_item_of_the_recipe(tmp_path: Path) -> None:
    recipe = runner.load_recipe()
    et = executorch_dir(tmp_path / "et", threadpool=True)
    sources = runner.shim_sources()
    command = runner.compile_command("g++", et, sources, "/out/runner")
    assert command[0] == "g++" and command[command.index("-o") + 1] == "/out/runner"
    assert "-std=c++17" in command and "-O2" in command and "-w" in command
    for define in recipe["defines"]:
        assert f"-D{define['name']}" in command
    for include in recipe["include_dirs"]:
        assert f"-I{os.path.join(et, include['path'])}" in command
    lib = os.path.join(et, "lib")
    assert f"-L{lib}" in command and f"-Wl,-rpath,{lib}" in command
    for library in recipe["libraries"] + recipe["system_libraries"]:
        assert f"-l{library['name']}" in command
    assert "-ldl" in command and "-lexecutorch_threadpool" in command
    # Headers are found through their directories; only the .cpp files are compiled.
    assert [s for s in command if s in sources] == [s for s in sources if s.endswith(".cpp")]
    for header in (s for s in sources if s.endswith(".h")):
        assert f"-I{os.path.dirname(header)}" in command


def test_an_optional_library_is_linked_only_where_it_exists(tmp_path: Path) -> None:
    command = runner.compile_command("c++", executorch_dir(tmp_path, threadpool=False), ["/s/main.cpp"], "/o")
    assert "-lexecutorch" in command and "-lexecutorch_threadpool" not in command and "-ldl" in command


def test_the_runner_is_every_file_of_the_shim_and_its_main() -> None:
    names = {os.path.basename(path) for path in runner.shim_sources()}
    toolchain = [CHECKOUT / "ptm-toolchain" / "executorch", CHECKOUT / "ptm-toolchain" / "include"]
    shim = {p.name for d in toolchain for p in d.iterdir() if p.suffix in (".h", ".cpp")}
    assert "ptm_tensor.h" in shim
    assert names == shim | {runner.RUNNER_MAIN}


def test_beside_the_modules_every_header_and_source_there_is_used(tmp_path: Path) -> None:
    # As ptm-build writes the worker: the shim's files (however many), the main and the recipe.
    for name in ["ptm_executorch.h", "ptm_tensor.h", "ptm_executorch.cpp", runner.RUNNER_MAIN]:
        (tmp_path / name).write_text("")
    (tmp_path / "common.py").write_text("")
    (tmp_path / runner.RECIPE).write_text(json.dumps({"std": {"value": "c++17"}}))
    assert [os.path.basename(p) for p in runner.shim_sources(str(tmp_path))] == [
        "ptm_executorch.cpp", "ptm_executorch.h", runner.RUNNER_MAIN, "ptm_tensor.h"]
    assert runner.recipe_path(str(tmp_path)) == str(tmp_path / runner.RECIPE)
