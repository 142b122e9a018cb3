"""Training utilities for the MLP demo."""
