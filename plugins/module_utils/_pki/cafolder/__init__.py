# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""The controller's CA folder: the root and intermediate, CRLs, the revocation registry, the intermediate rotation."""
