"""No top-level fact variable (``ansible_fqdn``) in what users read or run: roles, playbooks, the demo, the examples,
the Molecule scenarios, the test playbooks, the guides, the READMEs and every module's EXAMPLES. ansible-core 2.20
deprecates injecting facts as variables (INJECT_FACTS_AS_VARS); ``ansible_facts['fqdn']`` works before and after.
The e2e tests catch the deprecation at run time (tests/pgtls_harness.py); this catches it in files no test runs."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONTENT = ["roles", "playbooks", "demo", "examples", "extensions", "tests/integration", "tests/e2e/playbooks",
           "docs", "scripts/anchor"]
SUFFIXES = {".yml", ".yaml", ".j2", ".rst", ".md"}
# Variables named ansible_* that are not facts: connection and become settings, magic and special variables, and
# names that are not variables at all (the collections folder, Python packages named in prose).
NOT_FACTS = re.compile(
    r"ansible_(facts|local|host|port|user|password|connection|shell_type|shell_executable|python_interpreter"
    r"|become\w*|ssh_\w+|private_key_file|pipelining|timeout|check_mode|diff_mode|verbosity|version|managed"
    r"|play_\w+|failed_\w+|loop\w*|index_var|parent_role_\w+|role_\w+|run_tags|skip_tags|limit|forks"
    r"|inventory_sources|config_file|search_path|dependent_role_names|collection_name|collections|core|runner"
    r"|test\w*|builtin)$")
VARIABLE = re.compile(r"\bansible_[a-z0-9_]+")


def _texts():
    for folder in CONTENT:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix in SUFFIXES and path.is_file():
                yield path, path.read_text(encoding="utf-8")
    yield ROOT / "README.md", (ROOT / "README.md").read_text(encoding="utf-8")
    for module in sorted((ROOT / "plugins" / "modules").glob("*.py")):
        for node in ast.parse(module.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign) and [t.id for t in node.targets if isinstance(t, ast.Name)] == ["EXAMPLES"]:
                yield module, node.value.value


def top_level_facts(text: str) -> list[str]:
    return sorted({name for name in VARIABLE.findall(text) if not NOT_FACTS.match(name)})


def test_the_check_finds_a_top_level_fact():
    assert top_level_facts('subject_alt_names: ["{{ ansible_fqdn }}", "{{ ansible_facts[\'fqdn\'] }}"]') == [
        "ansible_fqdn"]
    assert top_level_facts("{{ hostvars[h].ansible_default_ipv4.address }} {{ ansible_host }}") == [
        "ansible_default_ipv4"]


@pytest.mark.parametrize("path, text", [pytest.param(p, t, id=str(p.relative_to(ROOT))) for p, t in _texts()])
def test_no_top_level_fact_variables(path, text):
    assert top_level_facts(text) == [], f"{path.relative_to(ROOT)}: use ansible_facts['<name>'] instead"
