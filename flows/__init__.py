"""Prefect flows that chain the stages."""
