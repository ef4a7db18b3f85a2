"""Loading torchvision's pretrained weights into our ResNets, tested offline.

Online users pass `weights=ResNet18_Weights.DEFAULT`; torch.hub downloads the file once into
$TORCH_HOME/hub/checkpoints and reads it from there afterwards. These tests put a state_dict they
make themselves in that cache, so no network is needed.
"""

from pathlib import Path

import pytest
import torch
import torchvision
from torchvision.models import ResNet18_Weights

import resnet_course as rc


def cached_file(hub: Path, weights) -> Path:
    hub.mkdir(parents=True, exist_ok=True)
    return hub / weights.url.rsplit("/", 1)[-1]


def test_loads_torchvision_weights_from_the_cache(hub_dir):
    weights = ResNet18_Weights.IMAGENET1K_V1
    torch.manual_seed(1)
    state = torchvision.models.resnet18().state_dict()
    torch.save(state, cached_file(hub_dir, weights))

    model = rc.resnet18(weights=weights)
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key
    # The same file loads into torchvision's model: both give the same outputs.
    theirs = torchvision.models.resnet18(weights=weights).eval()
    x = torch.randn(2, 3, 64, 64)
    assert torch.equal(model.eval()(x), theirs(x))


def test_offline_without_the_file_says_where_to_put_it(hub_dir):
    with pytest.raises(
        RuntimeError, match=r"could not download.*copy it to .*resnet18-f37072fd\.pth"
    ):
        rc.resnet18(weights=ResNet18_Weights.IMAGENET1K_V1)


def test_corrupt_file_is_reported(hub_dir):
    path = cached_file(hub_dir, ResNet18_Weights.IMAGENET1K_V1)
    path.write_bytes(b"PK\x03\x04 this is not a checkpoint")
    with pytest.raises(RuntimeError, match="corrupt or truncated.*delete it"):
        rc.resnet18(weights=ResNet18_Weights.IMAGENET1K_V1)


def test_pretrained_weights_need_the_1000_class_head(hub_dir):
    with pytest.raises(ValueError, match=r"1000-class.*model\.fc = nn\.Linear"):
        rc.resnet18(weights=ResNet18_Weights.IMAGENET1K_V1, num_classes=10)
