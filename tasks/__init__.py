"""Placeholder package: filled by the pipeline issue (#3)."""
