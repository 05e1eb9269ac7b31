# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""The core both sides share: the error type, names, keys, certificates, CRLs, the CA folder's layout, the file
primitives and the one write planner, the argument specs. It imports nothing from the other wings."""
