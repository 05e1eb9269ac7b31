"""Print the pip version ansible-test bootstraps (as in its cache file name, dots as underscores)."""

from __future__ import annotations

from ansible_test._internal.python_requirements import get_venv_packages


class _Python:  # get_venv_packages only reads .version
    version = "3.11"


print(get_venv_packages(_Python())["pip"].replace(".", "_"))
