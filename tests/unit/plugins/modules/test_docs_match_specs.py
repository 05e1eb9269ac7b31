"""Each module's DOCUMENTATION must describe exactly the argument spec that validates its input.

ansible-test's validate-modules does this for modules with code; server_cert and client_cert are implemented by
action plugins (their module files are documentation only), so this test holds them to the same rule."""

from __future__ import annotations

import importlib

import pytest
import yaml

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core import specs

MODULES = specs.MODULE_SPECS


def _documented(module: str) -> dict:
    mod = importlib.import_module(f"ansible_collections.pgtls.ssl.plugins.modules.{module}")
    doc = yaml.safe_load(mod.DOCUMENTATION)
    for fragment in doc.get("extends_documentation_fragment", []):
        namespace, collection, name = fragment.split(".", 2)
        if (namespace, collection) == ("ansible", "builtin"):
            continue  # action_common_attributes: attributes only, no options
        assert (namespace, collection) == ("pgtls", "ssl"), fragment
        name, _dot, variant = name.partition(".")  # pgtls.ssl._host_item.items: the ITEMS attribute
        frag = importlib.import_module(f"ansible_collections.pgtls.ssl.plugins.doc_fragments.{name}")
        text = getattr(frag.ModuleDocFragment, (variant or "documentation").upper())
        doc.setdefault("options", {}).update(yaml.safe_load(text).get("options", {}))
    for part in ("EXAMPLES", "RETURN"):
        yaml.safe_load(getattr(mod, part))  # must at least parse
    return doc["options"]


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
