// Kotlin side of templates/mobile-lib (app/src/main/java/com/example/myapp/Models.kt).
// Not compiled here (no Kotlin compiler on this project's machine); written against
// the JNI naming rules the Rust function Java_com_example_myapp_Models_classify follows.
package com.example.myapp

object Models {
    init {
        // The Lite Interpreter first (from the pytorch_android_lite AAR), then the Rust library.
        System.loadLibrary("pytorch_jni_lite")
        System.loadLibrary("my_mobile_lib")
    }

    /** Scores for 16 features; throws RuntimeException with ptm's message on failure. */
    @JvmStatic
    external fun classify(features: FloatArray): FloatArray
}
