# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""Filters whose code is imported at their first call, not when Ansible loads their file.

Ansible resolves any one of a collection's filters by importing every filter file of the collection, in each forked
worker (one per task and host) that uses one, and compiles their Python anew each time (no bytecode cache). A filter
file that imports its plugin_utils module at its top makes every such worker compile all of them; through ``lazy``
a worker compiles only the modules of the filters it calls."""

from __future__ import annotations

import importlib

PACKAGE = "ansible_collections.pgtls.ssl.plugins.plugin_utils"


def lazy(module: str, name: str):
    """The function ``name`` of plugin_utils/``module``.py, imported at its first call."""

    def call(*args, **kwargs):
        return getattr(importlib.import_module(f"{PACKAGE}.{module}"), name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.lazy_target = (module, name)  # for the tests: each one names a function that exists
    return call


def lazy_filters(module: str, names: tuple[str, ...]) -> dict:
    """FilterModule.filters()'s mapping: each name to its function in plugin_utils/``module``.py, imported lazily."""
    return {name: lazy(module, name) for name in names}
