"""The image library: ingest, store, process (embed), index and search assets."""
