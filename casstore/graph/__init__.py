"""Walking what records reference: closures, transfers between stores, bundles,
and verification by role."""
