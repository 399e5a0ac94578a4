// The JNI contract of Models.kt, checked from Java on a desktop JVM (there is no Kotlin
// compiler here): the same class name, method name and signature. Not part of an app.
package com.example.myapp;

public class Models {
    static { System.loadLibrary("my_mobile_lib"); }
    public static native float[] classify(float[] features);

    public static void main(String[] args) {
        float[] features = new float[16];
        for (int i = 0; i < 16; i++) features[i] = i / 16.0f;
        float[] scores = classify(features);
        StringBuilder out = new StringBuilder("scores");
        for (float s : scores) out.append(' ').append(s);
        System.out.println(out);
        try {
            classify(new float[3]);
            System.out.println("no exception");
        } catch (RuntimeException e) {
            System.out.println("RuntimeException: " + e.getMessage());
        }
    }
}
