// Calls templates/mobile-lib's Models.kt from a desktop JVM, as an Android app's code
// would: the scores for 16 features, then the RuntimeException a wrong-sized array gets.
// Compiled with Models.kt by tests/tests/templates.rs; not part of an app.
package com.example.myapp

fun main() {
    val features = FloatArray(16) { it / 16.0f }
    val scores = Models.classify(features)
    println("scores " + scores.joinToString(" "))
    try {
        Models.classify(FloatArray(3))
        println("no exception")
    } catch (e: RuntimeException) {
        println("RuntimeException: " + e.message)
    }
}
