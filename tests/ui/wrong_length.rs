// The classifier's input is [1, 16]: 15 values do not compile.
ptm::include_models!();

fn main() {
    let classifier = Classifier::load_from(Classifier::BUILD_ARTIFACT).unwrap();
    let features = [0f32; 15];
    let _ = classifier.forward(&features);
}
