"""Each module's DOCUMENTATION must describe exactly the argument spec that validates its input.

ansible-test's validate-modules does this for modules with code; server_cert and client_cert are implemented by
action plugins (their module files are documentation only), so this test holds them to the same rule."""

from __future__ import annotations

import functools
import importlib
import json
import os
import subprocess
import sys

import pytest
import yaml

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core import specs

MODULES = specs.MODULE_SPECS
COLLECTIONS = os.environ["PGTLS_COLLECTIONS_PATH"]  # tests/conftest.py


@functools.cache
def _ansible_doc() -> dict:
    """Every module's documentation as ansible-doc gives it: fragments resolved by ansible-core's own loader (a
    fragment name that resolves to another file - pgtls.ssl._x.cluster_files is the cluster_files fragment - shows
    here as it does to users and to validate-modules)."""
    names = [f"pgtls.ssl.{module}" for module in sorted(MODULES)]
    done = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-doc"), "--json", "-t", "module",
                           *names], capture_output=True, text=True, check=True, timeout=120,
                          env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS))
    return json.loads(done.stdout)


def _documented(module: str) -> dict:
    mod = importlib.import_module(f"ansible_collections.pgtls.ssl.plugins.modules.{module}")
    for part in ("EXAMPLES", "RETURN"):
        yaml.safe_load(getattr(mod, part))  # must at least parse
    return _ansible_doc()[f"pgtls.ssl.{module}"]["doc"]["options"]


def test_the_host_item_is_documented_once():
    """ITEMS (host_material) and MATERIAL (cluster_files' material and client_material) describe one item."""
    from ansible_collections.pgtls.ssl.plugins.doc_fragments._host_item import ModuleDocFragment

    items = yaml.safe_load(ModuleDocFragment.ITEMS)["options"]["items"]["suboptions"]
    material = yaml.safe_load(ModuleDocFragment.MATERIAL)["options"]
    assert items == material["material"]["suboptions"] == material["client_material"]["suboptions"]


def _compare(spec: dict, docs: dict, where: str) -> list[str]:
    problems = []
    if set(spec) != set(docs):
        problems.append(f"{where}: spec-only {sorted(set(spec) - set(docs))}, doc-only {sorted(set(docs) - set(spec))}")
    for name in set(spec) & set(docs):
        s, d = spec[name], docs[name]
        for field, default in (("type", "str"), ("required", False), ("elements", None), ("choices", None)):
            if s.get(field, default) != d.get(field, default):
                problems.append(f"{where}.{name}: {field} spec={s.get(field, default)!r} doc={d.get(field, default)!r}")
        if s.get("default") != d.get("default") and not (s.get("default") in ({}, []) and d.get("default") in ({}, [])):
            problems.append(f"{where}.{name}: default spec={s.get('default')!r} doc={d.get('default')!r}")
        if "options" in s or "suboptions" in d:
            problems += _compare(s.get("options", {}), d.get("suboptions", {}), f"{where}.{name}")
    return problems


@pytest.mark.parametrize("module", sorted(MODULES))
def test_documentation_matches_the_spec(module):
    assert _compare(MODULES[module], _documented(module), module) == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_secret_option_is_no_log(module):
    def walk(spec, where):
        for name, entry in spec.items():
            if any(word in name for word in ("passphrase", "key_content", "password")):
                assert entry.get("no_log") is True, f"{where}.{name} must be no_log"
            walk(entry.get("options", {}), f"{where}.{name}")
    walk(MODULES[module], module)
