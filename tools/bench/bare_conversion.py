"""The baseline: the plain PyTorch Mobile recipe, as a data scientist would script it,
for the example app's models. Per model the same torch steps as ptm's build: build (and
load weights), quantize (dynamic: Linear and embeddings, eager; static: graph mode on
the scripted model with the 64 committed calibration images), script, optimize_for_mobile,
save for the Lite Interpreter, load back and compare with the source model on 8 example
inputs (and, for static, the calibration samples).

    python bare_conversion.py review OUT_DIR     # the BERT-like review model alone
    python bare_conversion.py app OUT_DIR        # digits (static INT8), digits_fp32, review
"""
import glob
import os
import sys

import torch
import torch.jit.mobile
from torch.ao import quantization as q
from torch.utils.mobile_optimizer import optimize_for_mobile

MODELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../example-app/models")
sys.path.insert(0, MODELS)
import digits  # noqa: E402
import review  # noqa: E402


def save_and_compare(model, scripted, out, samples):
    optimized = optimize_for_mobile(scripted)
    optimized._save_for_lite_interpreter(out)
    lite = torch.jit.mobile._load_for_lite_interpreter(out)
    return max((lite(*s) - model(*s)).abs().max().item() for s in samples)


def convert_review(out):
    model = review.build_model().eval()
    spec = {torch.nn.Linear: q.default_dynamic_qconfig, torch.nn.Embedding: q.float_qparams_weight_only_qconfig}
    quantized = q.quantize_dynamic(model, spec, dtype=torch.qint8)
    generator = torch.Generator().manual_seed(0)
    samples = [(torch.randint(0, 30522, (1, 128), generator=generator),) for _ in range(8)]
    return save_and_compare(model, torch.jit.script(quantized), os.path.join(out, "review.ptl"), samples)


def digits_model():
    model = digits.build_model()
    model.load_state_dict(torch.load(os.path.join(MODELS, "digits.pth"), weights_only=True))
    return model.eval()


def digit_samples():
    generator = torch.Generator().manual_seed(0)
    return [(torch.rand(1, 1, 8, 8, generator=generator) * 16,) for _ in range(8)]


def convert_digits_fp32(out):
    model = digits_model()
    return save_and_compare(model, torch.jit.script(model), os.path.join(out, "digits_fp32.ptl"), digit_samples())


def convert_digits_static(out):
    model = digits_model()
    calibration = [(torch.load(f, weights_only=True),) for f in sorted(glob.glob(os.path.join(MODELS, "digits-calibration", "*.pt")))]

    def calibrate(module, samples):
        for sample in samples:
            module(*sample)

    quantized = q.quantize_jit(torch.jit.script(model), {"": q.get_default_qconfig("qnnpack")}, calibrate, [calibration])
    return save_and_compare(model, quantized, os.path.join(out, "digits.ptl"), digit_samples() + calibration)


which, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
torch.backends.quantized.engine = "qnnpack"
torch.set_num_threads(1)  # as ptm's worker does: qnnpack on a small x86 host is far slower threaded
with torch.no_grad():
    steps = [convert_review] if which == "review" else [convert_digits_static, convert_digits_fp32, convert_review]
    for step in steps:
        drift = step(out)
        print(f"bare: {step.__name__}: max drift {drift:.4f}", file=sys.stderr)
