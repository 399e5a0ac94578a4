"""linkcheck.py's proofs on small libraries built here with the host's clang-19: each
check passes on a library whose every name has a source, and fails naming the one that
has none."""
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import linkcheck  # noqa: E402

CLANG = "clang-19"  # with lld-19 and llvm-19, from tools/test-tools


def build(directory, name, source, *flags):
    """An object file (name.o) or a shared library from C source."""
    path = os.path.join(directory, name)
    with open(path + ".c", "w") as f:
        f.write(source)
    if name.endswith(".o"):
        command = [CLANG, "-fPIC", "-c", path + ".c", "-o", path]
    else:
        command = [CLANG, "-fPIC", "-shared", "-nostdlib", "-fuse-ld=lld", f"-Wl,-soname,{name}", path + ".c", "-o", path, *flags]
    subprocess.run(command, check=True, capture_output=True)
    return path


@pytest.fixture
def libraries(tmp_path):
    """An "AAR" with one library that exports provided() and imports from_platform();
    Rust's "standard library" importing from_rust(); a kept name; and a library under
    test that imports all of them."""
    aar = tmp_path / "aar"
    rust = tmp_path / "rust"
    aar.mkdir()
    rust.mkdir()
    build(str(aar), "libprovider.so", "int from_platform(void); int provided(void) { return from_platform(); }",
          "-Wl,--allow-shlib-undefined")
    obj = build(str(tmp_path), "std.o", "int from_rust(void); int rust_std(void) { return from_rust(); }")
    subprocess.run(["llvm-ar-19", "rcs", str(rust / "libstd-0.rlib"), obj], check=True)
    kept = tmp_path / "kept.txt"
    kept.write_text("# names\nfrom_kept  # where it is declared\n")
    return aar, rust, kept


def app(tmp_path, aar, imports, needed=("provider",), search=None):
    """libapp.so calling each of `imports`, linked against the libraries `needed`."""
    calls = " + ".join(f"{name}()" for name in imports)
    declarations = " ".join(f"int {name}(void);" for name in imports)
    return build(str(tmp_path), "libapp.so", f"{declarations} int app(void) {{ return {calls}; }}",
                 f"-L{aar}", *([f"-L{search}"] if search else []), *[f"-l{n}" for n in needed])


def test_every_import_with_a_source_passes(tmp_path, libraries):
    aar, rust, kept = libraries
    library = app(tmp_path, aar, ["provided", "from_platform", "from_rust", "from_kept"])
    problems, summary = linkcheck.check_android(library, str(aar), str(rust), str(kept))
    assert problems == []
    assert "libprovider.so" in summary and "1 from the AAR's libraries" in summary


def test_an_import_nobody_exports_fails_naming_it(tmp_path, libraries):
    aar, rust, kept = libraries
    library = app(tmp_path, aar, ["provided", "__assert_fail"])
    problems, _ = linkcheck.check_android(library, str(aar), str(rust), str(kept))
    assert problems == ["imports __assert_fail, which neither the AAR's libraries nor the platform export"]


def test_a_needed_library_from_elsewhere_fails(tmp_path, libraries):
    aar, rust, kept = libraries
    build(str(tmp_path), "libstray.so", "int stray(void) { return 1; }")
    library = app(tmp_path, aar, ["provided", "stray"], needed=("provider", "stray"), search=tmp_path)
    problems, _ = linkcheck.check_android(library, str(aar), str(rust), str(kept))
    assert any(p.startswith("NEEDED libstray.so: neither") for p in problems), problems
    assert any("stray" in p and p.startswith("imports") for p in problems), problems


def test_jni_names_follow_the_specification():
    assert linkcheck.jni_mangle("com.example.my_app.Models") == "com_example_my_1app_Models"
    assert linkcheck.jni_mangle("a;b[c") == "a_2b_3c"
    assert linkcheck.jni_mangle("caf\u00e9") == "caf_000e9"


def test_native_methods_are_read_from_javap():
    listing = """Compiled from "Models.kt"
public final class com.example.myapp.Models {
  public static final com.example.myapp.Models INSTANCE;
  private com.example.myapp.Models();
  public static final native float[] classify(float[]);
  public final int size();
  static {};
}
"""
    assert linkcheck.native_methods(listing) == [("com.example.myapp.Models", "classify")]


def test_header_functions_are_the_prototypes():
    text = """// comment naming fake(void);
#include <stddef.h>
/* old(int); */
int32_t my_app_classify(const float *features, size_t len, float *scores, size_t capacity);
void my_app_free(void *);
"""
    assert linkcheck.header_functions(text) == ["my_app_classify", "my_app_free"]
