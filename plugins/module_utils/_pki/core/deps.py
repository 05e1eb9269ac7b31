# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""The one place that imports ``cryptography`` and checks its minimum version.

The minimum is Debian 11's python3-cryptography (3.3.2): everything that runs on a target must work with it (tests
run the units on 3.3.2, 38.0.4 and the newest, and the integration targets' host halves on each).
The doc fragment ``pgtls.ssl.cryptography`` states the same minimum.
"""

from __future__ import annotations

import traceback

MINIMUM_CRYPTOGRAPHY_VERSION = "3.3"

CRYPTOGRAPHY_VERSION: str | None = None
CRYPTOGRAPHY_IMPORT_ERROR: str | None = None
try:
    import cryptography

    CRYPTOGRAPHY_VERSION = cryptography.__version__
    # Every cryptography package the collection imports, so a broken install is caught here too.
    import cryptography.hazmat.primitives.asymmetric.ec
    import cryptography.hazmat.primitives.asymmetric.ed25519
    import cryptography.hazmat.primitives.asymmetric.padding
    import cryptography.hazmat.primitives.asymmetric.rsa
    import cryptography.hazmat.primitives.hashes
    import cryptography.hazmat.primitives.serialization
    import cryptography.x509
    import cryptography.x509.oid
except ImportError:  # pragma: no cover - exercised only on hosts without a usable cryptography
    CRYPTOGRAPHY_IMPORT_ERROR = traceback.format_exc()


class _Missing:
    """Stands in for the cryptography names of a module_utils file whose guarded import failed.

    Module-level constants (``ec.SECP256R1``, ``NameOID.COMMON_NAME``...) still evaluate, so every file imports
    without cryptography and the module reports the problem through ``require_cryptography()``.
    """

    def __getattr__(self, name: str) -> _Missing:
        return self

    def __repr__(self) -> str:
        return "<cryptography is not available>"


MISSING = _Missing()


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def cryptography_problem() -> str | None:
    """Return a message if cryptography is missing or too old, else None."""
    if CRYPTOGRAPHY_VERSION is None:
        return (
            f"the Python library 'cryptography' (>= {MINIMUM_CRYPTOGRAPHY_VERSION}) is required on this host "
            "but cannot be imported (Debian/Ubuntu: apt install python3-cryptography; elsewhere: pip install cryptography)"
        )
    if _version_tuple(CRYPTOGRAPHY_VERSION) < _version_tuple(MINIMUM_CRYPTOGRAPHY_VERSION):
        return (
            f"the Python library 'cryptography' is {CRYPTOGRAPHY_VERSION} on this host; "
            f"pgtls.ssl needs {MINIMUM_CRYPTOGRAPHY_VERSION} or newer"
        )
    if CRYPTOGRAPHY_IMPORT_ERROR:
        last = CRYPTOGRAPHY_IMPORT_ERROR.strip().splitlines()[-1]
        return (
            f"the Python library 'cryptography' {CRYPTOGRAPHY_VERSION} is installed on this host but cannot be "
            f"imported ({last}); pgtls.ssl needs a working cryptography {MINIMUM_CRYPTOGRAPHY_VERSION} or newer"
        )
    return None


def require_cryptography(module) -> None:
    """Fail an AnsibleModule cleanly when cryptography is unusable."""
    problem = cryptography_problem()
    if problem:
        module.fail_json(msg=problem, exception=CRYPTOGRAPHY_IMPORT_ERROR)
