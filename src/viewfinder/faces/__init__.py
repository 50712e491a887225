"""Face recognition core: alignment, quality, clustering, person matching, a trainable
projection head and evaluation metrics. Pure logic on arrays: no database, no HTTP."""
