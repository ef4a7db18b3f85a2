"""Shapes-10's datasheet numbers: generation time, a linear classifier, and ResNet-20.

- generation: seconds to draw 50,000 + 10,000 images (median of 3 runs);
- linear probe: softmax regression on the standardised pixels (Adam, 10 epochs), test accuracy:
  how far plain pixel statistics get (colour, position and size carry no class);
- ResNet-20: ``fit`` with the ``default`` profile's budget for this device (on a 2-core CPU:
  2 epochs of 25,000 images), test accuracy on the 10,000 test images and wall time.

    python benchmarks/dataset_baselines.py                  # about 5 minutes on a 2-core CPU
    python benchmarks/dataset_baselines.py --image-size 16  # the degradation chapter's size
    python benchmarks/dataset_baselines.py --skip-resnet
"""

import argparse
import dataclasses
import os
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from resnet_course import resnet20
from resnet_course.data import make_shapes10, normalize
from resnet_course.train import budget, default_device, describe_device, fit


def generation_seconds(image_size: int, repeats: int = 3) -> float:
    """Median wall time of ``make_shapes10(50_000, 10_000)``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        make_shapes10(50_000, 10_000, image_size=image_size)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def linear_probe(image_size: int, epochs: int = 10) -> float:
    """Test accuracy of softmax regression on the pixels of the full dataset."""
    data = make_shapes10(50_000, 10_000, image_size=image_size)
    x_train = normalize(data.train_images, data.mean, data.std).flatten(1)
    x_test = normalize(data.test_images, data.mean, data.std).flatten(1)
    torch.manual_seed(0)
    model = nn.Linear(x_train.shape[1], len(data.classes))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(epochs):
        for idx in torch.randperm(len(x_train)).split(256):
            loss = F.cross_entropy(model(x_train[idx]), data.train_labels[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        return (model(x_test).argmax(1) == data.test_labels).float().mean().item()


def resnet20_at_default_budget(image_size: int) -> tuple[float, float, str]:
    """Test accuracy and training wall time of ResNet-20 with the default profile's budget."""
    os.environ["RESNET_COURSE_PROFILE"] = "default"
    b = budget()
    data = make_shapes10(b.train_size, b.test_size, image_size=image_size)
    torch.manual_seed(0)
    start = time.perf_counter()
    history = fit(resnet20(), data, b.epochs, batch_size=b.batch_size, progress=False)
    return history.test_acc[-1], time.perf_counter() - start, str(dataclasses.asdict(b))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--skip-resnet", action="store_true", help="only the quick baselines")
    args = parser.parse_args()
    size = args.image_size
    print(f"Shapes-10 at {size}x{size} on {describe_device(default_device())}")
    print(f"generation of 50,000 + 10,000 images: {generation_seconds(args.image_size):.1f} s")
    print(f"linear probe on pixels, test accuracy: {linear_probe(args.image_size):.1%}")
    if not args.skip_resnet:
        accuracy, seconds, what = resnet20_at_default_budget(args.image_size)
        print(f"ResNet-20, default budget {what}: test accuracy {accuracy:.1%}, {seconds:.0f} s")


if __name__ == "__main__":
    main()
