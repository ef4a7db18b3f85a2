"""resnet_course.settings: each variable is read when asked, and a bad value names the fix.

The modules that use the settings (data, train, distributed) have their own tests of what a
setting changes: tests/test_data.py, test_train.py, test_budget.py, test_distributed.py.
"""

import re
from pathlib import Path

import pytest

import resnet_course as rc
from resnet_course import data, settings, train


@pytest.mark.parametrize("read", [settings.profile, train.profile, rc.profile])
def test_profile(monkeypatch, read):
    monkeypatch.delenv("RESNET_COURSE_PROFILE", raising=False)
    assert read() == "default"
    monkeypatch.setenv("RESNET_COURSE_PROFILE", "smoke")  # read at call time, not at import
    assert read() == "smoke"
    monkeypatch.setenv("RESNET_COURSE_PROFILE", "fast")
    with pytest.raises(ValueError, match="RESNET_COURSE_PROFILE='fast'.*'default'.*'smoke'"):
        read()


@pytest.mark.parametrize("read", [settings.dataset, data.dataset_setting])
def test_dataset(monkeypatch, read):
    monkeypatch.delenv("RESNET_COURSE_DATASET", raising=False)
    assert read() == "shapes10"
    for name in settings.DATASETS:
        monkeypatch.setenv("RESNET_COURSE_DATASET", name)
        assert read() == name
    monkeypatch.setenv("RESNET_COURSE_DATASET", "imagenet")
    with pytest.raises(ValueError, match="RESNET_COURSE_DATASET='imagenet'.*'shapes10'"):
        read()


def test_data_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("RESNET_COURSE_DATA", str(tmp_path))
    assert settings.data_folder() == tmp_path
    for unset in ("", None):  # empty counts as not set
        if unset is None:
            monkeypatch.delenv("RESNET_COURSE_DATA")
        else:
            monkeypatch.setenv("RESNET_COURSE_DATA", unset)
        assert settings.data_folder() == Path.home() / ".cache" / "resnet_course"


def test_progress(monkeypatch):
    monkeypatch.delenv("RESNET_COURSE_PROGRESS", raising=False)
    assert settings.progress() is True
    monkeypatch.setenv("RESNET_COURSE_PROGRESS", "0")
    assert settings.progress() is False
    monkeypatch.setenv("RESNET_COURSE_PROGRESS", "1")
    assert settings.progress() is True


def test_budget_device(monkeypatch):
    monkeypatch.delenv("RESNET_COURSE_BUDGET_DEVICE", raising=False)
    assert settings.budget_device() is None
    monkeypatch.setenv("RESNET_COURSE_BUDGET_DEVICE", "")
    assert settings.budget_device() is None
    monkeypatch.setenv("RESNET_COURSE_BUDGET_DEVICE", "cuda")
    assert settings.budget_device() == "cuda"


def test_the_old_names_still_work():
    """Notebooks and tests call these by the names they had before settings.py."""
    assert rc.profile is train.profile is settings.profile
    assert data.dataset_setting is settings.dataset
    assert data.DATASETS is settings.DATASETS


def test_no_other_module_reads_the_environment():
    """One place reads the settings: no other module of the package reads a RESNET_COURSE_
    variable (docstrings and messages may name them)."""
    read = re.compile(r"(environ|getenv)[\w.\[(\s]*[\"']RESNET_COURSE_")
    assert read.search(Path(settings.__file__).read_text())  # the pattern finds a read
    for path in Path(settings.__file__).parent.rglob("*.py"):
        if path.name != "settings.py":
            assert not read.search(path.read_text()), path
