"""The compute budget: profiles, devices, and the override the tests use to try other devices."""

import pytest

from resnet_course import train as rt


def test_smoke_keeps_each_devices_shape(monkeypatch):
    monkeypatch.setenv("RESNET_COURSE_PROFILE", "smoke")
    monkeypatch.delenv("RESNET_COURSE_BUDGET_DEVICE", raising=False)
    cpu, mps, cuda = rt.budget("cpu"), rt.budget("mps"), rt.budget("cuda")
    assert cpu == rt.Budget("smoke", "cpu", 256, 256, 2, 64)
    # a GPU trains more epochs on more images, in smoke as in default: the same shape, tiny
    assert cuda.epochs > mps.epochs > cpu.epochs and cuda.train_size > cpu.train_size
    assert all(b.train_size <= 512 for b in (cpu, mps, cuda))


def test_default_is_sized_to_the_device(monkeypatch):
    monkeypatch.setenv("RESNET_COURSE_PROFILE", "default")
    monkeypatch.delenv("RESNET_COURSE_BUDGET_DEVICE", raising=False)
    b = rt.budget("cpu")
    assert (b.profile, b.device, b.train_size, b.epochs, b.batch_size) == (
        "default",
        "cpu",
        25_000,
        2,
        128,
    )
    assert rt.budget("cuda").epochs > rt.budget("mps").epochs > b.epochs


def test_budget_device_override(monkeypatch):
    """RESNET_COURSE_BUDGET_DEVICE sizes the budget for another device than the one present."""
    monkeypatch.setenv("RESNET_COURSE_PROFILE", "smoke")
    monkeypatch.setenv("RESNET_COURSE_BUDGET_DEVICE", "cuda")
    assert rt.budget("cpu") == rt.budget("cuda") and rt.budget().device == "cuda"
    monkeypatch.setenv("RESNET_COURSE_BUDGET_DEVICE", "tpu")
    with pytest.raises(ValueError, match="no budget for device type 'tpu'.*RESNET_COURSE_BUDGET"):
        rt.budget("cpu")


def test_unknown_device_type(monkeypatch):
    monkeypatch.delenv("RESNET_COURSE_BUDGET_DEVICE", raising=False)
    with pytest.raises(ValueError, match="no budget for device type 'xpu'; use 'cuda', 'mps'"):
        rt.budget("xpu")
