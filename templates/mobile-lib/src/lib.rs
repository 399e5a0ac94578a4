//! The Rust side of a mobile app: the model behind a C function (for Swift) and a JNI
//! function (for Kotlin). `android/` and `ios/` hold the platform side.

use std::sync::OnceLock;

ptm::include_models!();

/// The model, loaded on first use and shared by every thread (`Classifier` is `Sync`).
/// Each forward uses one intra-op thread unless `ptm::set_num_threads` is called before
/// the first load (a phone's big cores may serve a large model faster with 2 to 4).
fn classifier() -> Result<&'static Classifier, ptm::Error> {
    static MODEL: OnceLock<Result<Classifier, ptm::Error>> = OnceLock::new();
    MODEL.get_or_init(Classifier::load).as_ref().map_err(Clone::clone)
}

/// Scores for 16 features.
pub fn classify(features: &[f32; 16]) -> Result<Vec<f32>, ptm::Error> {
    Ok(classifier()?.forward(features)?.scores.to_vec())
}

/// C entry point: reads `len` (16) features, writes up to `capacity` scores. Returns
/// the number of scores, or -1 on an error (the message goes to stderr, which an
/// Android app does not show in logcat unless it redirects it).
///
/// # Safety
/// `features` must point to `len` floats and `scores` to `capacity` writable floats.
#[no_mangle]
pub unsafe extern "C" fn my_app_classify(features: *const f32, len: usize, scores: *mut f32, capacity: usize) -> i32 {
    if features.is_null() || scores.is_null() || len != 16 {
        return -1;
    }
    // SAFETY: the caller passes 16 readable floats.
    let input: &[f32; 16] = unsafe { &*(features as *const [f32; 16]) };
    match classify(input) {
        Ok(out) if out.len() <= capacity => {
            // SAFETY: the caller passes `capacity` writable floats.
            unsafe { std::ptr::copy_nonoverlapping(out.as_ptr(), scores, out.len()) };
            out.len() as i32
        }
        Ok(_) => -1,
        Err(error) => {
            eprintln!("{error}");
            -1
        }
    }
}

/// JNI entry point for `com.example.myapp.Models.classify(FloatArray): FloatArray`;
/// errors become a `RuntimeException` with ptm's message. Compiled for Android, and
/// elsewhere only with `--features jni`.
#[cfg(any(target_os = "android", feature = "jni"))]
#[no_mangle]
pub extern "system" fn Java_com_example_myapp_Models_classify<'local>(
    mut env: jni::JNIEnv<'local>,
    _class: jni::objects::JClass<'local>,
    features: jni::objects::JFloatArray<'local>,
) -> jni::sys::jfloatArray {
    let result = (|| -> Result<jni::objects::JFloatArray<'local>, String> {
        let len = env.get_array_length(&features).map_err(|e| e.to_string())?;
        if len != 16 {
            return Err(format!("features must hold 16 floats, not {len}"));
        }
        let mut input = [0f32; 16];
        env.get_float_array_region(&features, 0, &mut input).map_err(|e| e.to_string())?;
        let scores = classify(&input).map_err(|e| e.to_string())?;
        let out = env.new_float_array(scores.len() as i32).map_err(|e| e.to_string())?;
        env.set_float_array_region(&out, 0, &scores).map_err(|e| e.to_string())?;
        Ok(out)
    })();
    match result {
        Ok(array) => array.into_raw(),
        Err(message) => {
            let _ = env.throw_new("java/lang/RuntimeException", message);
            std::ptr::null_mut()
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_c_entry_point_scores_and_refuses_bad_arguments() {
        let features: [f32; 16] = std::array::from_fn(|i| i as f32 / 16.0);
        let mut scores = [0f32; 4];
        let n = unsafe { super::my_app_classify(features.as_ptr(), 16, scores.as_mut_ptr(), 4) };
        assert_eq!(n, 4);
        assert_eq!(scores.to_vec(), super::classify(&features).unwrap());
        assert_eq!(unsafe { super::my_app_classify(features.as_ptr(), 15, scores.as_mut_ptr(), 4) }, -1);
        assert_eq!(unsafe { super::my_app_classify(features.as_ptr(), 16, scores.as_mut_ptr(), 3) }, -1);
    }
}
