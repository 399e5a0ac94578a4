"""The phone check's proofs over the libraries it built, read with LLVM's tools (docs/device.md).

  linkcheck.py android LIBRARY --provider DIR --rust-lib DIR
      Every NEEDED entry of LIBRARY is a library in DIR (the AAR's jni/<abi>) or one of
      the platform's (bionic's libc, libm, libdl, liblog and libandroid), and every symbol
      LIBRARY imports is exported by a library in DIR or is one of the platform's names.
  linkcheck.py jni LIBRARY --classes DIR
      Every native method of the compiled Kotlin classes in DIR is exported by LIBRARY
      under its JNI name, and every JNI function LIBRARY exports has its native method.
  linkcheck.py header LIBRARY HEADER
      Every function the C header declares is defined in the static library.

The platform's names, which no file here can list whole (bionic is not on any registry
this project reaches), come from three places:
  - what the AAR's own libraries import and do not define: the NDK linked them against
    the real bionic, so each such name is one bionic exports (their imports carry its
    version node, LIBC);
  - what Rust's standard library for the target imports from C: its `libc` crate declares
    bionic's API, and its builtins were compiled against bionic's headers;
  - platform-names.txt beside this file: the few names neither covers, each with where
    bionic declares it.
A name none of them has fails the check, named: a glibc name the stand-in headers let
through (`__assert_fail`, `__errno_location`), or a libc++ symbol newer than the AAR's
libc++_shared.so.
"""
import argparse
import os
import re
import subprocess
import sys
from typing import Iterable, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
PLATFORM_LIBRARIES = {"libc.so", "libm.so", "libdl.so", "liblog.so", "libandroid.so"}
# Names a static link defines in every output: never imports.
LINKER_DEFINED = re.compile(r"^(_DYNAMIC|_GLOBAL_OFFSET_TABLE_|__ehdr_start|__executable_start|__(start|stop)_.*)$")
NM = os.environ.get("LLVM_NM", "llvm-nm-19")
READELF = os.environ.get("LLVM_READELF", "llvm-readelf-19")


def run(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"linkcheck: {' '.join(command)} failed: {done.stderr.strip()}")
    return done.stdout


def parse_nm(text: str) -> list[tuple[str, str]]:
    """(type letter, name without its version) of each line llvm-nm prints."""
    symbols = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and len(fields[-2]) == 1:
            symbols.append((fields[-2], fields[-1].split("@")[0]))
    return symbols


def dynamic(path: str) -> list[tuple[str, str]]:
    return parse_nm(run([NM, "-D", path]))


def exports(path: str) -> set[str]:
    return {name for kind, name in dynamic(path) if kind not in "Uwv"}


def imports(path: str) -> dict[str, bool]:
    """Each undefined dynamic symbol, and whether it is a strong reference."""
    return {name: kind == "U" for kind, name in dynamic(path) if kind in "Uwv"}


def needed(path: str) -> list[str]:
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", run([READELF, "-d", path]))


def libraries(directory: str) -> list[str]:
    return sorted(os.path.join(directory, f) for f in os.listdir(directory) if f.endswith(".so"))


def rust_imports(rust_lib: str) -> set[str]:
    """The C names Rust's standard library for the target imports: undefined in its
    rlibs, defined in none of them, and not Rust's own (mangled) names."""
    rlibs = sorted(os.path.join(rust_lib, f) for f in os.listdir(rust_lib) if f.endswith(".rlib"))
    undefined, defined = set(), set()
    for kind, name in parse_nm(run([NM, "--no-sort", *rlibs])):
        (undefined if kind in "Uw" else defined).add(name)
    return {n for n in undefined - defined if not n.startswith(("_ZN", "_R")) and not LINKER_DEFINED.match(n)}


def kept_names(path: str) -> set[str]:
    with open(path) as f:
        return {line.split("#")[0].strip() for line in f if line.split("#")[0].strip()}


def provider_symbols(provider: str) -> tuple[set[str], set[str]]:
    """What the libraries in `provider` export, and what they import and do not define."""
    provided, imported = set(), set()
    for library in libraries(provider):
        provided |= exports(library)
        imported |= set(imports(library))
    return provided, imported - provided


def demangle(names: Iterable[str]) -> list[str]:
    names = sorted(names)
    done = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True)
    readable = done.stdout.splitlines() if done.returncode == 0 else names
    return [name if name == pretty else f"{pretty} ({name})" for name, pretty in zip(names, readable)]


def check_android(library: str, provider: str, rust_lib: str, kept: str) -> tuple[list[str], str]:
    """Every problem found, one line each (none means the check passed), and what the
    library imports from where."""
    problems = []
    shipped = {os.path.basename(p) for p in libraries(provider)}
    entries = needed(library)
    for entry in entries:
        if entry not in shipped | PLATFORM_LIBRARIES:
            problems.append(f"NEEDED {entry}: neither a library of {provider} nor one of the platform's")
    provided, from_bionic = provider_symbols(provider)
    platform = from_bionic | rust_imports(rust_lib) | kept_names(kept)
    names = imports(library)
    unresolved = {name: strong for name, strong in names.items() if name not in provided and name not in platform}
    for name in demangle(n for n, strong in unresolved.items() if strong):
        problems.append(f"imports {name}, which neither the AAR's libraries nor the platform export")
    for name in demangle(n for n, strong in unresolved.items() if not strong):
        problems.append(f"imports {name} weakly, and neither the AAR's libraries nor the platform export it: it would be null on a phone")
    from_aar = sum(1 for n in names if n in provided)
    summary = (f"NEEDED {', '.join(entries)}; {len(names)} imported names, {from_aar} from the AAR's libraries, "
               f"{len(names) - from_aar} from the platform")
    return problems, summary


def jni_mangle(text: str) -> str:
    """A name as the JNI specification mangles it in a native method's symbol."""
    out = []
    for char in text:
        if char == "/" or char == ".":
            out.append("_")
        elif char == "_":
            out.append("_1")
        elif char == ";":
            out.append("_2")
        elif char == "[":
            out.append("_3")
        elif char.isascii() and char.isalnum():
            out.append(char)
        else:
            out.append(f"_0{ord(char):04x}")
    return "".join(out)


def native_methods(javap_output: str) -> list[tuple[str, str]]:
    """(class, method) of every native method in `javap -p` output."""
    found, current = [], None
    for line in javap_output.splitlines():
        header = re.match(r"^(?:.*\s)?(?:class|interface)\s+([\w.$]+)", line)
        if header and line.rstrip().endswith("{"):
            current = header.group(1)
            continue
        method = re.search(r"\bnative\b.*?\s([\w$]+)\(", line)
        if method and current:
            found.append((current, method.group(1)))
    return found


def class_names(classes: str) -> list[str]:
    names = []
    for directory, _, files in os.walk(classes):
        for file in files:
            if file.endswith(".class") and "META-INF" not in directory:
                relative = os.path.relpath(os.path.join(directory, file), classes)
                names.append(relative[: -len(".class")].replace(os.sep, "."))
    return sorted(names)


def check_jni(library: str, classes: str) -> tuple[list[str], list[str]]:
    """(problems, the JNI names checked)."""
    listing = run(["javap", "-p", "-cp", classes, *class_names(classes)])
    methods = native_methods(listing)
    problems = []
    if not methods:
        problems.append(f"no native method in the classes of {classes}")
    overloaded = {m for m in methods if methods.count(m) > 1}
    for cls, name in sorted(overloaded):
        problems.append(f"{cls}.{name} is overloaded: its JNI names carry the signature, which this check does not derive")
    symbols = {f"Java_{jni_mangle(cls)}_{jni_mangle(name)}" for cls, name in methods}
    exported = exports(library)
    for symbol in sorted(symbols - exported):
        problems.append(f"the native method {symbol} has no function in {os.path.basename(library)}")
    for symbol in sorted(s for s in exported - symbols if s.startswith("Java_")):
        problems.append(f"{os.path.basename(library)} exports {symbol}, which no native method of the Kotlin classes declares")
    return problems, sorted(symbols)


def header_functions(text: str) -> list[str]:
    """The functions a C header declares (prototypes at file scope)."""
    text = re.sub(r"/\*.*?\*/|//[^\n]*", "", text, flags=re.DOTALL)
    text = re.sub(r"^\s*#[^\n]*", "", text, flags=re.MULTILINE)
    return sorted(set(re.findall(r"([A-Za-z_]\w*)\s*\([^;{}]*\)\s*;", text)))


def check_header(library: str, header: str) -> tuple[list[str], list[str]]:
    with open(header) as f:
        functions = header_functions(f.read())
    defined = {name for kind, name in parse_nm(run([NM, "--defined-only", library])) if kind == "T"}
    problems = [] if functions else [f"{header} declares no function"]
    for function in functions:
        # Mach-O prefixes C names with an underscore.
        if function not in defined and f"_{function}" not in defined:
            problems.append(f"{os.path.basename(header)} declares {function}, which {os.path.basename(library)} does not define")
    return problems, functions


def report(label: str, problems: list[str], detail: str) -> int:
    if problems:
        print(f"{label}: FAILED")
        for problem in problems:
            print(f"  {problem}")
        return 1
    print(f"{label}: ok ({detail})")
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    android = sub.add_parser("android")
    android.add_argument("library")
    android.add_argument("--provider", required=True)
    android.add_argument("--rust-lib", required=True)
    android.add_argument("--kept", default=os.path.join(HERE, "platform-names.txt"))
    android.add_argument("--label", required=True)
    jni = sub.add_parser("jni")
    jni.add_argument("library")
    jni.add_argument("--classes", required=True)
    jni.add_argument("--label", required=True)
    header = sub.add_parser("header")
    header.add_argument("library")
    header.add_argument("header")
    header.add_argument("--label", required=True)
    args = parser.parse_args(argv)
    if args.command == "android":
        problems, summary = check_android(args.library, args.provider, args.rust_lib, args.kept)
        return report(args.label, problems, summary)
    if args.command == "jni":
        problems, symbols = check_jni(args.library, args.classes)
        return report(args.label, problems, f"{', '.join(symbols)} exported")
    problems, functions = check_header(args.library, args.header)
    return report(args.label, problems, f"{', '.join(functions)} defined")


if __name__ == "__main__":
    sys.exit(main())
