"""Print the pip version this venv's ansible-test bootstraps on this Python (as in its cache file name, dots as
underscores)."""

from __future__ import annotations

import sys

from ansible_test._internal.python_requirements import get_venv_packages


class _Python:  # get_venv_packages only reads .version
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"


print(get_venv_packages(_Python())["pip"].replace(".", "_"))
