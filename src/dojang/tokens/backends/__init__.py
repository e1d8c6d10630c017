"""Persistent replay stores for one-time tokens (one module per backend)."""
