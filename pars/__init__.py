"""Parameter sets shipped with hapgpu (JSON files in this package)."""
