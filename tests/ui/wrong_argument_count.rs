// `pair` takes x and ids; leaving one out does not compile.
ptm::include_models!();

fn main() {
    let pair = Pair::load().unwrap();
    let x = [0f32; 4];
    let _ = pair.forward(ptm::TensorRef::new(&x, &[1, 4]));
}
