"""Fixtures shared by the data tests."""

from __future__ import annotations

import os

import pytest

from cnnlab.data import folders as folders_module


@pytest.fixture
def decodes(monkeypatch):
    """Names of the files the folder loader decodes (cache misses), in order."""
    seen: list[str] = []
    original = folders_module.read_image_file

    def spy(path, **kwargs):
        seen.append(os.path.basename(path))
        return original(path, **kwargs)

    monkeypatch.setattr(folders_module, "read_image_file", spy)
    return seen
