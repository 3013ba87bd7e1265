"""Driftline's command line and composition root: wires registry, retrain, service and monitor."""
