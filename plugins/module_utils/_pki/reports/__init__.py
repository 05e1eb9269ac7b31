# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""The audit's outputs: records, JSON, the Prometheus textfile, the HTML page."""
