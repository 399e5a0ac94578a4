"""The baseline: the plain PyTorch Mobile recipe for the review model, as a data
scientist would script it. Same torch steps as ptm: build, dynamic INT8 (Linear and
embeddings, qnnpack), script, optimize_for_mobile, save for the Lite Interpreter, load
back and compare with the source model on 8 example inputs."""
import os
import sys

import torch
import torch.jit.mobile
from torch.ao import quantization as q
from torch.utils.mobile_optimizer import optimize_for_mobile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../example-app/models"))
import review  # noqa: E402

out = sys.argv[1]
torch.backends.quantized.engine = "qnnpack"
torch.set_num_threads(1)  # as ptm's worker does: qnnpack on a small x86 host is far slower threaded
with torch.no_grad():
    model = review.build_model().eval()
    spec = {torch.nn.Linear: q.default_dynamic_qconfig, torch.nn.Embedding: q.float_qparams_weight_only_qconfig}
    quantized = q.quantize_dynamic(model, spec, dtype=torch.qint8)
    optimized = optimize_for_mobile(torch.jit.script(quantized))
    optimized._save_for_lite_interpreter(out)
    lite = torch.jit.mobile._load_for_lite_interpreter(out)
    generator = torch.Generator().manual_seed(0)
    for _ in range(8):
        x = torch.randint(0, 30522, (1, 128), generator=generator)
        drift = (lite(x) - model(x)).abs().max().item()
print(f"bare: {os.path.getsize(out)} bytes, last drift {drift:.4f}", file=sys.stderr)
