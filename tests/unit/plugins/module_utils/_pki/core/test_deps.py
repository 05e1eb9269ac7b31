"""Without a usable cryptography every module_utils file still imports, and deps.py names the problem."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from conftest import COLLECTIONS

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core import deps

_BLOCKED = textwrap.dedent(
    """
    import importlib, pkgutil, sys
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name == "cryptography" or name.startswith("cryptography."):
                raise ImportError(f"No module named {name!r}")
    sys.meta_path.insert(0, Block())
    sys.path.insert(0, sys.argv[1])
    import ansible_collections.pgtls.ssl.plugins.module_utils._pki as pki
    for info in pkgutil.iter_modules(pki.__path__):
        importlib.import_module(f"{pki.__name__}.{info.name}")
    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core import deps
    print(deps.cryptography_problem())
    """
)


def test_every_module_util_imports_without_cryptography_and_the_problem_is_named():
    out = subprocess.run([sys.executable, "-c", _BLOCKED, COLLECTIONS], capture_output=True, text=True, check=True)
    minimum = deps.MINIMUM_CRYPTOGRAPHY_VERSION
    assert f"'cryptography' (>= {minimum}) is required on this host but cannot be imported" in out.stdout


def test_too_old_cryptography_names_the_version_found(monkeypatch):
    monkeypatch.setattr(deps, "MINIMUM_CRYPTOGRAPHY_VERSION", "3.3")
    monkeypatch.setattr(deps, "CRYPTOGRAPHY_VERSION", "3.2.1")
    expected = "the Python library 'cryptography' is 3.2.1 on this host; pgtls.ssl needs 3.3 or newer"
    assert deps.cryptography_problem() == expected


def test_broken_cryptography_names_the_version_and_the_error(monkeypatch):
    monkeypatch.setattr(deps, "CRYPTOGRAPHY_VERSION", "41.0.7")
    error = "Traceback...\nImportError: libssl.so.3: cannot open shared object file"
    monkeypatch.setattr(deps, "CRYPTOGRAPHY_IMPORT_ERROR", error)
    problem = deps.cryptography_problem()
    assert "'cryptography' 41.0.7 is installed on this host but cannot be imported" in problem
    assert "libssl.so.3" in problem


def test_usable_cryptography_is_no_problem():
    assert deps.cryptography_problem() is None
