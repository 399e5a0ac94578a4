//! The runtime's documentation builds with no libtorch and no Python, as docs.rs and an
//! editor on a bare machine need.

use ptm_tests::{logging_python, repo, starts};

#[test]
fn the_runtime_documents_without_libtorch_or_python() {
    let scratch = tempfile::tempdir().unwrap();
    let log = scratch.path().join("starts.log");
    let python = logging_python(scratch.path(), &log, true);
    let target = repo().join("target/docs-only");
    // As docs.rs builds it (DOCS_RS=1), then with the feature a user can turn on.
    for (docs_rs, features) in [(true, None), (false, Some("--features=doc-only"))] {
        let mut command = std::process::Command::new(env!("CARGO"));
        command
            .args(["doc", "-p", "ptm", "--no-deps"])
            .args(features)
            .current_dir(repo())
            .env("CARGO_TARGET_DIR", &target)
            .env("PTM_PYTHON", &python)
            .env_remove("VIRTUAL_ENV")
            .env_remove("LIBTORCH")
            .env_remove("DOCS_RS");
        if docs_rs {
            command.env("DOCS_RS", "1");
        }
        let out = command.output().unwrap();
        assert!(out.status.success(), "DOCS_RS {docs_rs}, {features:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(target.join("doc/ptm/index.html").is_file());
    }
    assert_eq!(starts(&log), 0, "a documentation build started Python");
}
