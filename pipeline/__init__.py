"""leakwatt pipeline: CLI, params, reproduction templates, measurement harness, DVC stages."""
