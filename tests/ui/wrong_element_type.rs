// The classifier takes float32 features; i32s are a compile error, not a run-time one.
ptm::include_models!();

fn main() {
    let classifier = Classifier::load_from(Classifier::BUILD_ARTIFACT).unwrap();
    let features = [0i32; 16];
    let _ = classifier.forward(&features);
}
