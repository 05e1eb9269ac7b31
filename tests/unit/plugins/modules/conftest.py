"""Fixtures of the in-process module tests: a CA folder as the site playbook leaves it, copied per test."""

from __future__ import annotations

import shutil

import pytest
from inprocess import run


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A CA folder made by pgtls.ssl.ca_folder (root "Option Root", intermediate "Option CA"), once per module."""
    pki = tmp_path_factory.mktemp("ca") / "pki"
    done = run("ca_folder", {"path": str(pki), "root_common_name": "Option Root", "intermediate_common_name": "Option CA"})
    assert not done.get("failed"), done.get("msg")
    return pki


@pytest.fixture
def work(folder, tmp_path):
    """A test's own copy of the CA folder (pki/) and an empty out/ for the host's files."""
    shutil.copytree(folder, tmp_path / "pki")
    (tmp_path / "out").mkdir()
    return tmp_path
