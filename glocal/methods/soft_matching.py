"""ABS soft matching in chunks: a softmax over every (class, sentence) pair of each crop, without
ever holding the (images x crops x classes x sentences) similarities.

For crop i with logits s_icj = cos(F_i, t_cj) / T over all real pairs,
score(c) = sum_i sum_j p_icj s_icj with p_icj = exp(s_icj - m_i) / Z_i and
Z_i = sum_cj exp(s_icj - m_i). Any shift m_i gives the same result; the usual choice, the row's
maximum, needs a pass over every class before the first exponential. Here m_i is the
Cauchy-Schwarz bound |F_i| max|t| / T, known before any product, so classes are visited in
chunks in one pass, each chunk adding to a_ic = sum_j exp(s_icj - m_i) s_icj and to Z_i:
the unchunked result up to float32 round-off. The bound is used while every exp(s - m_i) stays
a normal float32 (s - m_i >= -2 m_i > -80; T >= 0.025 for unit vectors); a lower temperature
first takes each row's exact maximum in an extra pass.
"""

from __future__ import annotations

import torch

from glocal.methods.budget import FLOAT_BYTES, require
from glocal.text.bank import Padded

# exp(x) for x >= -SAFE_RANGE is a normal float32 (the smallest normal is exp(-87.3)).
SAFE_RANGE = 80.0
# Logit elements per chunk: small enough that the elementwise passes over a chunk run from the
# cache, large enough for an efficient matrix product (benchmarks/score.py measures this).
TILE_ELEMENTS = 2**18
# Rows (crops) per matrix product at least, where a shard has the images: skinny products run far
# below the GEMM rate, and the BLAS rounds them differently with the thread count (seen: 6 rows).
MIN_ROWS = 64


def smallest_chunk_bytes(crops: int, classes: int, sentences: int) -> int:
    """Bytes for one image and one class per chunk: a (crops, C) accumulator and three
    (crops, M) buffers (logits, exponentials, a product's temporary)."""
    return FLOAT_BYTES * (crops * classes + 3 * crops * sentences)


def plan_chunks(images: int, crops: int, classes: int, sentences: int, memory: int,
                tile: int = TILE_ELEMENTS) -> tuple[int, int]:
    """(images per chunk, classes per chunk) within ``memory`` bytes and about ``tile`` logits.
    Enough images go into a chunk for MIN_ROWS rows per product where the budget allows."""
    require("abs", smallest_chunk_bytes(crops, classes, sentences), memory)
    elements = memory // FLOAT_BYTES
    per_class = crops * sentences
    image_chunk = min(images, -(-MIN_ROWS // crops))
    while image_chunk > 1 and image_chunk * (crops * classes + 3 * per_class) > elements:
        image_chunk //= 2
    fits = (elements // image_chunk - crops * classes) // (3 * per_class)  # classes per chunk at these images
    class_chunk = max(1, min(classes, fits, tile // (per_class * image_chunk)))
    image_chunk = max(image_chunk, min(images, tile // (per_class * class_chunk),
                                       elements // (crops * classes + 3 * per_class * class_chunk)))
    return image_chunk, class_chunk


def soft_matching_scores(crops: torch.Tensor, text: Padded, temperature: float, memory: int,
                         tile: int = TILE_ELEMENTS) -> torch.Tensor:
    """crops (B, n, D), text emb (C, M, D) with mask (C, M) -> (B, C) soft-matching scores,
    computed in (image, class) chunks whose temporaries stay within ``memory`` bytes."""
    images, n, dim = crops.shape
    classes, sentences, _ = text.emb.shape
    image_chunk, class_chunk = plan_chunks(images, n, classes, sentences, memory, tile)
    # padding made exactly zero: its logit is 0, so it adds nothing to a_ic and a known
    # exp(-m_i) per padded slot to Z_i, taken off at the end
    flat = (text.emb * text.mask.unsqueeze(-1)).reshape(classes * sentences, dim)
    padded_slots = int((~text.mask).sum())
    width = class_chunk * sentences
    text_norm = flat.norm(dim=1).max()
    out = crops.new_empty(images, classes)
    for i0 in range(0, images, image_chunk):
        rows = (crops[i0:i0 + image_chunk] / temperature).reshape(-1, dim)  # (R, D), R = b * n
        shift = rows.norm(dim=1) * text_norm  # >= every logit of the row
        if 2 * float(shift.max()) > SAFE_RANGE:
            shift = _real_maxima(rows, flat, text.mask.reshape(-1), width)
        weighted = rows.new_empty(rows.shape[0], classes)  # a_ic
        normaliser = torch.zeros_like(shift)  # Z_i
        for c0 in range(0, classes, class_chunk):
            c1 = min(classes, c0 + class_chunk)
            logits = rows @ flat[c0 * sentences:c1 * sentences].T
            e = (logits - shift[:, None]).exp_()
            normaliser += e.sum(dim=1)
            weighted[:, c0:c1] = e.mul_(logits).view(rows.shape[0], c1 - c0, sentences).sum(dim=2)
        normaliser -= padded_slots * torch.exp(-shift)
        out[i0:i0 + image_chunk] = weighted.div_(normaliser[:, None]).view(-1, n, classes).sum(dim=1)
    return out


def _real_maxima(rows: torch.Tensor, flat: torch.Tensor, real: torch.Tensor, width: int) -> torch.Tensor:
    """(R,) each row's largest logit over the real (unpadded) sentences, in column chunks."""
    maxima = [(rows @ flat[k:k + width].T).masked_fill_(~real[k:k + width], float("-inf")).amax(dim=1)
              for k in range(0, flat.shape[0], width)]
    return torch.stack(maxima, dim=1).amax(dim=1)
