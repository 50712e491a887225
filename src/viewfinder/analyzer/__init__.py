"""Seed 003's image analyzer: CLIP zero-shot style, mood, composition, colour and subjects,
and an image-generation prompt written from them by an LLM (or composed without one)."""
