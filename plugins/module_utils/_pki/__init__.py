# Private to the pgtls.ssl collection: not a public API, may change in any release.
