"""glocal: training-free zero-shot image classification, from local details to global context.

The core is pure torch: backbone adapters over transformers (`glocal.backbones`), attention
sources (`glocal.encode.attention`), crop geometry (`glocal.geometry.crops`), text data (`glocal.text.files`), the
feature extractor (`glocal.encode.extract`) and one small module per method behind a registry
(`glocal.methods`).
"""

__version__ = "0.1.0"
