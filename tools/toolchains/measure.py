"""Run by a toolchain's own python (tools/toolchains/run table): builds the Toolchains
table's models through ptm with tools/compat's machinery, in the formats given, under a
work directory of the toolchain's, and writes the rows as JSON.

Usage: measure.py WORK OUT FORMAT..."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "compat"))
import compat  # noqa: E402

# One torchvision CNN, the tiny Hugging Face BERT and the LSTM, in float: `<architecture>_<quantize>`.
MODELS = ["mobilenet_v3_small_none", "bert_none", "lstm_none"]


def main(work, out, formats):
    selected = [r for r in compat.rows(formats=formats) if f"{r[0]}_{r[6]}" in MODELS]
    os.makedirs(work, exist_ok=True)
    rows = compat.build_rows(selected, work)
    with open(out, "w") as f:
        json.dump({"versions": compat.versions(), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
