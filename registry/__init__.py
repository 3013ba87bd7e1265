"""Driftline's system of record: models, versions, aliases, runs, predictions, labels, leases.

Importing this package does nothing: no engine, no directories, no logging set-up. Open a store with
:func:`registry.store.Registry.open` (or build one from an engine in tests).
"""
