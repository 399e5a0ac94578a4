//! The same declarations give the same bytes, wherever and by whichever cache they build.

use ptm_tests::{sha256_of, Fixture};

#[test]
fn two_builds_in_different_places_write_identical_artifacts_and_reports() {
    for name in ["python-dynamic", "trace-static"] {
        let first = Fixture::new(name);
        let second = Fixture::new(name);
        let other_target = tempfile::tempdir().unwrap();
        // Different crate directories, target directories and caches (each fixture has its own).
        let a = first.build(&[]);
        let b = second.build(&[("CARGO_TARGET_DIR", other_target.path())]);
        assert!(a.success && b.success, "{}\n{}", a.stderr, b.stderr);
        let (a, b) = (a.out_dir.unwrap().join("ptm"), b.out_dir.unwrap().join("ptm"));
        assert_ne!(a, b);
        let mut artifacts = 0;
        for entry in std::fs::read_dir(&a).unwrap() {
            let file = entry.unwrap().file_name();
            if sha256_of(&a.join(&file)) != sha256_of(&b.join(&file)) {
                let (x, y) = (std::fs::read(a.join(&file)).unwrap(), std::fs::read(b.join(&file)).unwrap());
                let at = x.iter().zip(&y).position(|(p, q)| p != q).unwrap_or(x.len().min(y.len()));
                let around = |bytes: &[u8]| String::from_utf8_lossy(&bytes[at.saturating_sub(80)..(at + 80).min(bytes.len())]).into_owned();
                panic!("{name}: {} differs ({} vs {} bytes) from byte {at}:\n{}\n---\n{}", file.to_string_lossy(), x.len(), y.len(), around(&x), around(&y));
            }
            artifacts += usize::from(file.to_string_lossy().ends_with(".ptl"));
        }
        assert!(artifacts >= 1, "{name}: no .ptl in {}", a.display());
        let report = std::fs::read_to_string(a.join("models.json")).unwrap();
        for place in [first.path(), second.path(), other_target.path()] {
            assert!(!report.contains(&place.display().to_string()), "{name}: models.json names {}", place.display());
        }
    }
}

#[test]
fn the_normalized_artifact_loads_in_full_jit_and_the_lite_interpreter_alike() {
    let fixture = Fixture::new("trace-static");
    let build = fixture.build(&[]);
    assert!(build.success, "{}", build.stderr);
    let ptl = build.out_dir.unwrap().join("ptm/conv.ptl");
    let script = r#"
import sys, torch, torch.jit.mobile as mobile
torch.backends.quantized.engine = "qnnpack"
full = torch.jit.load(sys.argv[1])
lite = mobile._load_for_lite_interpreter(sys.argv[1])
x = torch.randn(1, 1, 8, 8, generator=torch.Generator().manual_seed(3))
with torch.no_grad():
    a, b = full(x), lite(x)
assert a.shape == b.shape and torch.equal(a, b), (a, b)
print("same", tuple(a.shape))
"#;
    let out = std::process::Command::new(ptm_tests::venv_python()).args(["-B", "-c", script]).arg(&ptl).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("same"), "{}", String::from_utf8_lossy(&out.stdout));
}
