"""Backends: one module per framework, plus the protocol they share."""
