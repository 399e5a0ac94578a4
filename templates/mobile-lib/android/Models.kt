// Kotlin side of templates/mobile-lib (app/src/main/java/com/example/myapp/Models.kt).
// `Models.classify` is the Rust function Java_com_example_myapp_Models_classify. The
// project's tests compile this file with a current kotlinc (2.x), call it from a desktop
// JVM (tests/tests/templates.rs) and check its native method against the library built
// for Android (tools/phone-check/run).
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
