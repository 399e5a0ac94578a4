// Swift side of templates/mobile-lib. Not compiled here (no Swift compiler on this
// project's machine); it calls the C function declared in my_mobile_lib.h through the
// app's bridging header.
enum Classifier {
    struct Failure: Error {}

    /// Scores for 16 features.
    static func classify(_ features: [Float]) throws -> [Float] {
        precondition(features.count == 16, "the model takes 16 features")
        var scores = [Float](repeating: 0, count: 4)
        let count = features.withUnsafeBufferPointer { input in
            scores.withUnsafeMutableBufferPointer { output in
                my_app_classify(input.baseAddress, input.count, output.baseAddress, output.count)
            }
        }
        guard count >= 0 else { throw Failure() }
        return Array(scores.prefix(Int(count)))
    }
}
