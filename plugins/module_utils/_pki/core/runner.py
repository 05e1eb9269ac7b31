# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""The one place where modules turn the core's results and PkiError into exit_json/fail_json."""

from __future__ import annotations

from collections.abc import Callable

from .deps import require_cryptography
from .errors import PkiError


def run(module, operation: Callable[[dict, bool], dict] | None) -> None:
    """Call ``operation(params, check_mode)`` and exit. Warnings are shown with module.warn(); the diff is
    returned only in diff mode; a PkiError becomes a failure whose message names the option or file."""
    require_cryptography(module)
    try:
        result = operation(module.params, module.check_mode)
    except PkiError as exc:
        module.fail_json(msg=str(exc), **getattr(exc, "details", {}))
    except Exception as exc:  # the module boundary: our error type, never a raw traceback
        module.fail_json(msg=f"unexpected error ({type(exc).__name__}): {exc}")
    for warning in result.pop("warnings", []):
        module.warn(warning)
    diff = result.pop("diff", None)
    if module._diff and diff is not None:
        result["diff"] = diff
    if result.get("ok") is False and module.params.get("fail_on_findings", False):
        module.fail_json(**result)
    module.exit_json(**result)
