"""Untrusted image input: decoding bytes safely, fetching image URLs safely, cropping."""
