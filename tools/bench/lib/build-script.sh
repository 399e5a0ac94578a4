# Cold conversions through the example app's real build script, shared by the
# conversion benchmarks. The caller sets root, work (a scratch directory), script (the
# example app's compiled build script) and python, and converts once into
# "$work/warmup" before timing. Every run shares one toolchain directory
# ("$work/toolchain"): the torch probe and ExecuTorch's runner are made once, and each
# timed run converts from an empty model cache.

. "$root/tools/lib/example-models.sh"

# The model tables of the app's Cargo.toml named in $2..., under a [package] called $1.
crate_of() { # name model...
    mkdir -p "$work/$1"
    ln -sfn "$root/example-app/models" "$work/$1/models"
    local name=$1; shift
    example_model_tables "$@" | sed "1i [package]\\nname = \"$name\"\\nversion = \"0.0.0\"\\n" > "$work/$name/Cargo.toml"
}
run_build_script() { # crate_dir cache_dir out_dir jobs
    env -u VIRTUAL_ENV CARGO_MANIFEST_DIR="$1" OUT_DIR="$3" TARGET=x86_64-unknown-linux-gnu NUM_JOBS="$4" \
        PTM_PYTHON="$python" PTM_CACHE_DIR="$2" PTM_TOOLCHAIN_DIR="$work/toolchain" "$script" >/dev/null 2>"$work/stderr" || { cat "$work/stderr" >&2; exit 1; }
}
now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
cold() { # name crate jobs: one cold run of the build script, from an empty cache
    rm -rf "$work/cache-$1"; mkdir -p "$work/cache-$1"
    local t0 t1; t0=$(now); run_build_script "$2" "$work/cache-$1" "$work/out-$1" "$3"; t1=$(now)
    echo "$t1 - $t0" | bc >> "$work/$1"
}
