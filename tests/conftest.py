"""Fixtures shared by several test files."""

import urllib.error

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Every test in this process runs torch on one thread, set before any fixture computes.

    Results are bit-identical only at the same thread count (a reduction split over two threads
    adds in another order), so a module-level reference run and the test that compares with it
    must share it. One thread is also as fast for these tiny models, and a busy machine cannot
    stall it. Notebooks and torchrun children are other processes, with their own settings.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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
