"""Fixtures shared by several test files."""

import urllib.error

import pytest
import torch


@pytest.fixture
def hub_dir(tmp_path, monkeypatch):
    """An empty torch.hub cache and no network: returns the cache's (not yet made) checkpoints
    folder, where torchvision looks for downloaded weights."""
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))

    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("network is unreachable (test)")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    yield tmp_path / "hub" / "checkpoints"
    torch.hub.set_dir(old)
