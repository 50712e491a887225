"""Image files: a content-addressed blob store (a local directory by default)."""
