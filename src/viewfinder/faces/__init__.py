"""Faces: alignment, quality, clustering, person matching, a trainable projection head and
evaluation metrics (pure logic on arrays), plus the library's face indexing (``indexing``) and
people service (``people``) built on them."""
