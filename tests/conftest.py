"""Make ``ansible_collections.pgtls.ssl`` importable from a plain checkout, whatever its folder is called."""

from __future__ import annotations

import os
import sys
import uuid

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
