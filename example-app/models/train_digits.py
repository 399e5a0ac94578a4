"""Trains the digits model and writes everything the app's build and run use.

    .venv/bin/python example-app/models/train_digits.py

Writes, beside this file and in ../data:
  digits.pth                  the trained weights (state_dict)
  digits-calibration/NN.pt    64 training images, the static INT8 calibration set
  ../data/digits-test.bin     the held-out images the app classifies: 65 bytes each,
                              64 pixels (0..16, row-major) then the label

Deterministic: fixed split, seeds and single-threaded training.
"""
import os

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from digits import build_model

HERE = os.path.dirname(os.path.abspath(__file__))
CALIBRATION_SAMPLES = 64


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    data = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        data.data.astype("uint8"), data.target.astype("uint8"), test_size=0.25, random_state=0, stratify=data.target)

    images = torch.tensor(x_train, dtype=torch.float32).reshape(-1, 1, 8, 8)
    labels = torch.tensor(y_train, dtype=torch.long)
    model = build_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    for epoch in range(40):
        order = torch.randperm(len(images))
        for start in range(0, len(images), 64):
            batch = order[start:start + 64]
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(images[batch]), labels[batch])
            loss.backward()
            optimizer.step()

    model.eval()
    with torch.no_grad():
        test = torch.tensor(x_test, dtype=torch.float32).reshape(-1, 1, 8, 8)
        accuracy = (model(test).argmax(1) == torch.tensor(y_test, dtype=torch.long)).float().mean().item()
    print(f"held-out accuracy (fp32, eager): {accuracy * 100:.2f}% on {len(x_test)} images")

    torch.save(model.state_dict(), os.path.join(HERE, "digits.pth"))
    calibration = os.path.join(HERE, "digits-calibration")
    os.makedirs(calibration, exist_ok=True)
    for name in os.listdir(calibration):
        os.remove(os.path.join(calibration, name))
    for i in range(CALIBRATION_SAMPLES):
        torch.save(images[i:i + 1].clone(), os.path.join(calibration, f"{i:02}.pt"))
    with open(os.path.join(HERE, "..", "data", "digits-test.bin"), "wb") as out:
        for pixels, label in zip(x_test, y_test):
            out.write(bytes(pixels.tolist()) + bytes([int(label)]))


if __name__ == "__main__":
    main()
