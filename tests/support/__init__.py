"""Helpers shared by the suites that run real processes (simulator, origin, edge host)."""
