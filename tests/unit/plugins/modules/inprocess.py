"""Run the collection's modules and action plugins in this process, as ansible-playbook would on localhost: a module's
own main() with its arguments (AnsibleModule, argument spec, fail_json and all), an action plugin's run() with a task
whose host modules are run the same way. Fast enough to attack every option of every module in `make units`; the
fault suite (tests/faults) runs the same modules through ansible-playbook."""

from __future__ import annotations

import contextlib
import importlib
import io
import json
from types import SimpleNamespace
from unittest import mock

from ansible.module_utils import basic

# Modules whose work is done by an action plugin (their module file is documentation, or the host half).
ACTIONS = ("ca_folder", "client_cert", "cluster_tls", "intermediate_rotation", "server_cert")


def _module_args(args: dict):
    """Expose ``args`` to the next AnsibleModule (ansible-core's own helper where it has one)."""
    try:
        from ansible.module_utils.testing import patch_module_args  # ansible-core 2.19 and later
    except ImportError:  # pragma: no cover - older ansible-core
        payload = json.dumps({"ANSIBLE_MODULE_ARGS": args}).encode()
        return mock.patch.object(basic, "_ANSIBLE_ARGS", payload)
    return patch_module_args(args)


def run_module(name: str, args: dict, check_mode: bool = False, diff: bool = False) -> dict:
    """The result a module returns for ``args`` (what ansible-playbook would register)."""
    module = importlib.import_module(f"ansible_collections.pgtls.ssl.plugins.modules.{name}")
    out = io.StringIO()
    given = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)
    with _module_args(given), contextlib.redirect_stdout(out):
        try:
            module.main()
        except SystemExit:
            pass
    lines = [line for line in out.getvalue().splitlines() if line.startswith("{")]
    if not lines:
        raise AssertionError(f"{name} printed no result: {out.getvalue()[-2000:]}")
    return json.loads(lines[-1])


class _Shell:
    tmpdir = "/tmp"


def run_action(name: str, args: dict, check_mode: bool = False, diff: bool = False) -> dict:
    """The result an action plugin returns for ``args``; the host modules it asks for run through run_module."""
    plugin = importlib.import_module(f"ansible_collections.pgtls.ssl.plugins.action.{name}").ActionModule

    class InProcess(plugin):
        def _execute_module(self, module_name=None, module_args=None, task_vars=None, **kwargs):
            return run_module(module_name.rsplit(".", 1)[-1], module_args or {}, self._task.check_mode,
                              self._task.diff)

    task = SimpleNamespace(args=dict(args), async_val=0, check_mode=check_mode, diff=diff, action=f"pgtls.ssl.{name}")
    connection = SimpleNamespace(_shell=_Shell())
    action = InProcess(task, connection, play_context=SimpleNamespace(), loader=None, templar=None)
    return action.run(task_vars={"inventory_hostname": "localhost"})


def run(name: str, args: dict, check_mode: bool = False, diff: bool = False) -> dict:
    return (run_action if name in ACTIONS else run_module)(name, args, check_mode, diff)
