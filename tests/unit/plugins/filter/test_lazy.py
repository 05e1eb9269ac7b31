"""The collection's filter files load no plugin_utils module until a filter is called (Ansible imports every filter
file in each worker that uses any one filter); every lazily named function exists, and a call reaches it."""

from __future__ import annotations

import importlib
import os
import pkgutil
import subprocess
import sys

import pytest

import ansible_collections.pgtls.ssl.plugins.filter as filter_package
from ansible_collections.pgtls.ssl.plugins.plugin_utils._lazy import PACKAGE, lazy

FILES = sorted(name for _finder, name, _pkg in pkgutil.iter_modules(filter_package.__path__))


def filters(name: str) -> dict:
    return importlib.import_module(f"{filter_package.__name__}.{name}").FilterModule().filters()


@pytest.mark.parametrize("name", FILES)
def test_every_lazy_filter_names_a_function_that_exists(name):
    found = filters(name)
    assert found
    for filter_name, function in found.items():
        target = getattr(function, "lazy_target", None)
        if target is None:
            continue
        module, attribute = target
        assert callable(getattr(importlib.import_module(f"{PACKAGE}.{module}"), attribute)), (filter_name, target)


def test_loading_every_filter_file_imports_no_plugin_utils_module():
    """What Ansible does in a worker: every filter file imported, FilterModule().filters() called - in a fresh
    interpreter, so nothing imported by other tests counts."""
    code = (
        "import importlib, sys\n"
        f"for name in {FILES!r}:\n"
        "    importlib.import_module('ansible_collections.pgtls.ssl.plugins.filter.' + name).FilterModule().filters()\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('" + PACKAGE + "'))))\n"
    )
    # The same sys.path as this process (tests/conftest.py puts the collection's root on it).
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env=dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p)))
    loaded = done.stdout.split()
    assert loaded == [PACKAGE, f"{PACKAGE}._lazy"], loaded


def test_a_lazy_filter_calls_its_function_with_its_arguments():
    server_names = lazy("_replication", "server_names")
    assert server_names.__name__ == "server_names"
    assert server_names("db1", {"fqdn": "db1.example", "hostname": "db1"}, "10.0.0.1", ["extra"]) == [
        "db1", "db1.example", "10.0.0.1", "extra"]
    with pytest.raises(AttributeError):
        lazy("_replication", "no_such_filter")()
