"""Top-1 agreement of the INT8 .ptl (Lite Interpreter) with the fp32 source model on
generated token sequences, and the size ratio against the fp32 .ptl."""
import os
import sys

import torch
import torch.jit.mobile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../example-app/models"))
import review  # noqa: E402

ptm_dir, count = sys.argv[1], int(sys.argv[2])
model = review.build_model().eval()
# The fp32 baseline is made here, independently of ptm: the float model scripted and
# saved for the Lite Interpreter, as the plain recipe would without quantization.
fp32_bytes = len(torch.jit.script(model)._save_to_buffer_for_lite_interpreter())
int8_bytes = os.path.getsize(os.path.join(ptm_dir, "review.ptl"))
lite = torch.jit.mobile._load_for_lite_interpreter(os.path.join(ptm_dir, "review.ptl"))
generator = torch.Generator().manual_seed(1234)
agree = 0
with torch.no_grad():
    for _ in range(count):
        x = torch.randint(0, 30522, (1, 128), generator=generator)
        agree += int(model(x).argmax(-1).item() == lite(x).argmax(-1).item())
print(f"fp32 .ptl {fp32_bytes} bytes, INT8 .ptl {int8_bytes} bytes, ratio {int8_bytes / fp32_bytes:.3f}")
print(f"top-1 agreement with fp32 on {count} generated inputs: {agree / count:.4f}")
