"""glocal: training-free zero-shot image classification, from local details to global context.

The core is pure torch: backbone adapters over transformers (`glocal.backbones`), attention
sources (`glocal.attention`), crop geometry (`glocal.crops`), text data (`glocal.text`), the
feature extractor (`glocal.extract`) and one small module per method behind a registry
(`glocal.methods`).
"""

__version__ = "0.1.0"
