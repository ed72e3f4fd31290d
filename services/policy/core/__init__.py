"""Pure policy core: creator controls, the checks that enforce them, and their store."""
