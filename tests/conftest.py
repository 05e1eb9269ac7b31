"""Make ``ansible_collections.pgtls.ssl`` importable from a plain checkout, whatever its folder is called; fail a
test module that leaves a process of its Ansible runs behind."""

from __future__ import annotations

import os
import sys
import uuid

import pgtls_harness
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _collection_root() -> str:
    # Inside an ansible_collections/pgtls/ssl layout already (ansible-test, installed collection)?
    parts = ROOT.split(os.sep)
    if parts[-3:-1] == ["ansible_collections", "pgtls"]:
        return os.sep.join(parts[:-3])
    base = os.path.join(ROOT, ".cache", "collections")
    link = os.path.join(base, "ansible_collections", "pgtls", "ssl")
    if not os.path.islink(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        tmp = os.path.join(os.path.dirname(link), f".ssl-{uuid.uuid4().hex}")
        os.symlink(ROOT, tmp)
        os.replace(tmp, link)
    return base


COLLECTIONS = _collection_root()
os.environ["PGTLS_COLLECTIONS_PATH"] = COLLECTIONS  # for tests that run ansible-playbook
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)
# The unit tests' helpers (pkitools: test material, the folder snapshot), for every folder of tests/unit.
HELPERS = os.path.join(ROOT, "tests", "unit", "plugins", "module_utils")
if HELPERS not in sys.path:
    sys.path.append(HELPERS)


@pytest.fixture(autouse=True, scope="module")
def no_process_left_behind():
    """After each test module: no process started by its ansible-playbook or ansible-runner runs is alive."""
    yield
    left = pgtls_harness.leftovers()
    assert not left, "processes left behind by this module's Ansible runs (now killed):\n" + "\n".join(
        f"{pid}: {cmd[:300]}" for pid, cmd in sorted(left.items()))
