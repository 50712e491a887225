"""Seed 000's analysis of one image: operations, regions with box reuse, the analysis service."""
