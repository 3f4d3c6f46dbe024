"""One module per method; importing this package registers them all."""

from glocal.methods import abs, clip, clip_d, clip_e, cupl, lgca, waffle, wca  # noqa: F401
