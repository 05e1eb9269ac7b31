# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The action side's twin of module_utils/_pki/core/runner.run: every action plugin of the collection validates its
arguments against its spec, runs one operation, and turns a PkiError (or anything unexpected) into a failure whose
message names the option or file - never a traceback. Warnings go to the display."""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.errors import PkiError

display = Display()


class PkiAction(ActionBase):
    """Subclasses set SPEC (and MUTUALLY_EXCLUSIVE, REQUIRED_ONE_OF) and implement operate(params) -> result."""

    TRANSFERS_FILES = False
    SPEC: dict = {}
    MUTUALLY_EXCLUSIVE: list = []
    REQUIRED_ONE_OF: list = []

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        self._task.args = self.arguments(dict(self._task.args))
        try:
            _validation, params = self.validate_argument_spec(argument_spec=self.SPEC,
                                                              mutually_exclusive=self.MUTUALLY_EXCLUSIVE,
                                                              required_one_of=self.REQUIRED_ONE_OF)
        except AnsibleActionFail as exc:
            result.update(failed=True, msg=str(exc))
            return result
        self.task_vars = task_vars or {}
        self.executions = 0
        try:
            result.update(self.operate(params))
        except PkiError as exc:
            result.update(failed=True, msg=self.failure(str(exc)), **getattr(exc, "details", {}))
        except Exception as exc:  # the action's boundary: our error type, never a raw traceback for the user
            result.update(failed=True, msg=self.failure(f"unexpected error ({type(exc).__name__}): {exc}"))
        for warning in result.pop("warnings", []):
            display.warning(warning)
        result["module_executions"] = self.executions  # 0 when the host was not asked (a failure says so too)
        return result

    def arguments(self, args: dict) -> dict:
        """The task's arguments as the spec validates them (a subclass may leave out what it documents as ignored)."""
        return args

    def operate(self, params: dict) -> dict:
        raise NotImplementedError

    def failure(self, msg: str) -> str:
        """The failure message as the user reads it (a subclass adds what was left, or what the task names)."""
        return msg

    def execute(self, module: str, args: dict, words=None) -> dict:
        """One execution of a host module; its failure becomes a PkiError in this task's words (``words``)."""
        self.executions += 1
        answer = self._execute_module(module_name=module, module_args=args, task_vars=self.task_vars)
        if answer.get("failed"):
            error = PkiError((words or (lambda m: m))(answer.get("msg", f"{module} failed")))
            error.details = {k: answer[k] for k in ("failed_step", "log_tail") if k in answer}
            raise error
        return answer
