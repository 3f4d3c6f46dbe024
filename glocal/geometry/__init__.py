"""Crop geometry: boxes, plans, tensor crops and resampling, raw- and feature-space views."""
