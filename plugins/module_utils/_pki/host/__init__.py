# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""What runs on the database and application hosts (Python 3.9 and cryptography 3.3.2 at the least): keys, CSRs and
installs, a cluster's files, discovery, the activation, the snapshot, validation."""
