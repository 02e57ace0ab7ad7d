"""Evidence: manifests, the per-device ledger, verify, dispute bundles."""
