"""Top-1 agreement of the review model's INT8 .pte, run in ExecuTorch's native runtime
(the runner ptm-build verifies with), with the fp32 source model on generated token
sequences; the same generator and count as agreement.py uses for the .ptl."""
import glob
import os
import subprocess
import sys
import tempfile

import torch

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "../../example-app/models"))
sys.path.insert(0, os.path.join(here, "../../ptm-build/python"))
import review  # noqa: E402
from ptm_convert.pte import decode, encode  # noqa: E402

# The toolchain directory the build kept the runner in (PTM_TOOLCHAIN_DIR, else the cache).
ptm_dir, count, toolchain = sys.argv[1], int(sys.argv[2]), sys.argv[3]
runner = sorted(glob.glob(os.path.join(toolchain, "runners", "executorch-*", "ptm_executorch_runner")))[-1]
model = review.build_model().eval()
generator = torch.Generator().manual_seed(1234)
samples = [(torch.randint(0, 30522, (1, 128), generator=generator),) for _ in range(count)]
with tempfile.TemporaryDirectory() as scratch:
    inputs, outputs = os.path.join(scratch, "in.bin"), os.path.join(scratch, "out.bin")
    open(inputs, "wb").write(encode(torch, samples))
    subprocess.run([runner, os.path.join(ptm_dir, "review_pte.pte"), inputs, outputs], check=True, capture_output=True)
    native = decode(torch, open(outputs, "rb").read())
agree = 0
with torch.no_grad():
    for sample, (logits,) in zip(samples, native):
        agree += int(model(*sample).argmax(-1).item() == logits.argmax(-1).item())
print(f"top-1 agreement of the .pte with fp32 on {count} generated inputs: {agree / count:.4f}")
