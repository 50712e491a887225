"""Per-collection binary classifiers over stored embeddings (seed 000's ``classify``)."""
