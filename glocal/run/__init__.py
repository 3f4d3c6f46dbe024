"""A run: the typed request, the plan resolved from it, scoring, and the in-process demo."""
