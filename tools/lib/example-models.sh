# The example app's model declarations, for tools that build crates of some of them
# (the conversion benchmarks, the phone check). The caller sets root.

# The [package.metadata.models.*] tables of example-app/Cargo.toml for each model named.
example_model_tables() { # model...
    awk -v keep=" $* " '
        /^\[\[?package\.metadata\.models\./ { split($0, parts, "."); model = parts[4]; sub(/\]+$/, "", model) }
        /^\[/ && !/^\[\[?package\.metadata\.models\./ { model = "" }
        model != "" && index(keep, " " model " ") { print }' "$root/example-app/Cargo.toml"
}
