"""Images to features: the batched crop-and-encode engine, the reference extractor, attention sources, the per-process model cache."""
