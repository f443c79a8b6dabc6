"""The products store and its companions in the same database: the alert outbox and the
forecast verification ledger (the only modules of the pipelines layer that speak SQL)."""
