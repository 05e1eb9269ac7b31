"""The built collection holds only what we mean to ship, even when built from a used, dirty working tree.

The checkout's files (tracked and new, as `git ls-files` sees them) are copied to a scratch folder, which is
then soiled the way a working tree gets soiled - tool caches, virtual environments, a CA folder next to a
playbook, stray keys, ansible-test output, old tarballs - and `ansible-galaxy collection build` runs there.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GALAXY = Path(sys.executable).parent / "ansible-galaxy"

# What a tarball may hold: these files and folders, nothing else.
ALLOWED = [
    "MANIFEST.json", "FILES.json", "README.md", "LICENSE", "CHANGELOG.rst", ".ansible-lint", ".yamllint",
    "meta", "meta/*", "plugins", "plugins/*", "roles", "roles/*", "playbooks", "playbooks/*",
    "docs", "docs/*", "tests", "tests/*",
    "changelogs", "changelogs/config.yaml", "changelogs/changelog.yaml", "changelogs/fragments",
    "changelogs/fragments/*.yml", "changelogs/fragments/*.yaml", "changelogs/fragments/.keep",
]
# Names that must never be in a tarball, at any depth.
FORBIDDEN_PARTS = ["__pycache__", ".ruff_cache", ".pytest_cache", ".mypy_cache", ".venv*", ".cache", ".ansible",
                   "pki", "output", "build", ".git", ".ci", "demo", "scripts"]
FORBIDDEN_NAMES = ["*.key", "*.pem", "*.crt", "*.csr", "*.crl", "*.p12", "*.pgtls-new", "*.pyc", "*.tar.gz",
                   ".plugin-cache.yaml", "Makefile", "requirements-*.txt"]

# A key header only (no key): built here so secret scanners do not take this file for a leaked key.
KEY_HEADER = "-----BEGIN " + "PRIVATE KEY-----"
DIRT = {
    ".ruff_cache/0.9.0/12345": "cache",
    ".pytest_cache/v/cache/lastfailed": "{}",
    "plugins/modules/__pycache__/ca.cpython-311.pyc": "bytecode",
    "plugins/module_utils/_pki/core/keys.pyc": "bytecode",
    "tests/unit/.pytest_cache/README.md": "cache",
    ".venv/bin/python": "venv",
    ".venv-crypto38/pyvenv.cfg": "venv",
    ".cache/tree/ansible_collections/pgtls/ssl/galaxy.yml": "tree",
    ".ansible/collections/ansible_collections/pgtls/ssl/README.md": "lint copy",
    ".mypy_cache/3.11/x.json": "cache",
    "tests/output/junit/python3.11.xml": "<testsuites/>",
    "build/lib/x.py": "build",
    "pgtls-ssl-0.0.9.tar.gz": "old artifact",
    "changelogs/.plugin-cache.yaml": "plugins: {}",
    "pki/root.key": KEY_HEADER,
    "pki/root.crt": "-----BEGIN CERTIFICATE-----",
    "playbooks/pki/intermediate.key": KEY_HEADER,
    "examples/awx-project/pki/revoked.yml": "[]",
    "roles/server/files/server.key": KEY_HEADER,
    "roles/client/files/postgresql.key.pgtls-new": KEY_HEADER,
    "leaked.pem": KEY_HEADER,
    "tests/integration/targets/ca/files/stray.crl": "crl",
}


def _matches(path: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(path, pattern) for pattern in patterns)


def _checkout_copy(dest: Path) -> None:
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            check=True, capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel, follow_symlinks=False)


def test_build_from_a_dirty_tree_ships_only_allowed_paths(tmp_path):
    tree = tmp_path / "ssl"
    _checkout_copy(tree)
    for rel, text in DIRT.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text(text)
    out = tmp_path / "out"
    env = dict(os.environ, ANSIBLE_NOCOLOR="1")
    subprocess.run([str(GALAXY), "collection", "build", "--output-path", str(out), str(tree)], check=True,
                   capture_output=True, env=env)
    (tarball,) = out.glob("pgtls-ssl-*.tar.gz")
    with tarfile.open(tarball) as tar:
        names = sorted(member.name.rstrip("/") for member in tar.getmembers())

    not_allowed = [n for n in names if not _matches(n, ALLOWED)]
    forbidden = [n for n in names if any(_matches(part, FORBIDDEN_PARTS) for part in n.split("/")[:-1])
                 or _matches(n.rsplit("/", 1)[-1], FORBIDDEN_NAMES + FORBIDDEN_PARTS)]
    leaked = [rel for rel in DIRT if rel in names]
    assert not not_allowed, f"outside the allowed paths: {not_allowed}"
    assert not forbidden, f"caches, keys or build files in the tarball: {forbidden}"
    assert not leaked
    # And what a user needs is there.
    for wanted in ["README.md", "LICENSE", "CHANGELOG.rst", "meta/runtime.yml", "plugins/modules/ca.py",
                   "plugins/filter/hba_problems.yml", "roles/server/README.md", "roles/client/README.md",
                   "roles/server/meta/argument_specs.yml", "playbooks/site.yml", "changelogs/changelog.yaml"]:
        assert wanted in names, wanted
