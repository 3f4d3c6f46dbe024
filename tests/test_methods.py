"""Every method against a hand computation of its formula on fixed small tensors.

Expected values are computed with plain Python loops over lists, not by calling the
implementation's vectorised helpers."""

import math

import pytest
import torch

from glocal.config import ABSConfig, DescriptorConfig, LGCAConfig, NoConfig, WaffleConfig, WCAConfig, config_for
from glocal.kinds.features import ImageFeatures
from glocal.methods import get_method, method_names
from glocal.text.bank import Padded, TextBank


def unit(*v):
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


def dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def softmax(xs):
    m = max(xs)
    e = [math.exp(x - m) for x in xs]
    s = sum(e)
    return [x / s for x in e]


def norm_list(v):
    return unit(*v)


# Fixed data: D = 3, C = 2 classes, B = 2 images, N = 3 crops.
F_FULL = [unit(1, 0.2, 0.1), unit(0.1, 1, 0.3)]
CROPS = [
    [unit(1, 0, 0), unit(0.5, 0.5, 0), unit(0.2, 0.1, 1)],
    [unit(0, 1, 0), unit(0.3, 0.9, 0.1), unit(1, 1, 1)],
]
FEAT = [
    [unit(0.9, 0.1, 0.2), unit(0.1, 0.2, 0.9), unit(1, 1, 0)],
    [unit(0.2, 0.8, 0.1), unit(0.7, 0.1, 0.7), unit(0, 0.2, 1)],
]
PROMPTS = [unit(1, 0.1, 0), unit(0, 1, 0.2)]
TEMPLATES = [[unit(1, 0, 0.1), unit(0.8, 0.3, 0)], [unit(0.1, 1, 0), unit(0, 0.7, 0.6)]]
# class 0 has 3 sentences, class 1 has 2 (padded)
DESC = [[unit(1, 0.3, 0), unit(0.6, 0, 0.8), unit(0.9, 0.4, 0.1)], [unit(0, 1, 0.1), unit(0.2, 0.6, 0.7)]]


def padded(lists):
    return Padded.from_lists([torch.tensor(x) for x in lists])


@pytest.fixture
def bank():
    return TextBank(
        classnames=["a", "b"],
        prompts=torch.tensor(PROMPTS),
        templates=torch.tensor(TEMPLATES),
        descriptions=padded(DESC),
        clip_d=padded(DESC),
        waffle=padded([DESC[1], DESC[0][:1]]),
        awt=padded(DESC),
    )


@pytest.fixture
def features():
    return ImageFeatures(
        full=torch.tensor(F_FULL),
        crops={"raw": torch.tensor(CROPS), "feat": torch.tensor(FEAT), "wca": torch.tensor(CROPS),
               "lgca": [torch.tensor(CROPS), torch.tensor(FEAT)[:, :2]], "views": torch.tensor(CROPS), "bifta": torch.tensor(CROPS)},
        image_ids=["x", "y"],
    )


def run(name, features, bank, config=None):
    spec = get_method(name)
    return spec.score(features, bank, config if config is not None else config_for(name, spec.config_cls))


def check(actual, expected):
    assert actual.shape == (len(expected), len(expected[0]))
    assert torch.allclose(actual, torch.tensor(expected, dtype=actual.dtype), atol=1e-5), (actual, expected)


def test_clip(features, bank):
    check(run("clip", features, bank), [[dot(f, t) for t in PROMPTS] for f in F_FULL])


def test_clip_e(features, bank):
    classes = [norm_list([sum(col) / len(ts) for col in zip(*ts)]) for ts in TEMPLATES]
    check(run("clip_e", features, bank), [[dot(f, t) for t in classes] for f in F_FULL])


def test_clip_d_and_waffle_average_over_real_sentences(features, bank):
    check(run("clip_d", features, bank), [[sum(dot(f, t) for t in ts) / len(ts) for ts in DESC] for f in F_FULL])
    waffle = [DESC[1], DESC[0][:1]]
    check(run("waffle", features, bank), [[sum(dot(f, t) for t in ts) / len(ts) for ts in waffle] for f in F_FULL])


def test_clip_d_and_waffle_embedding_averaging_is_the_official_class_embedding(features, bank):
    """The official zeroshot_classifier: one class embedding normalise(mean_j t_cj), then cos."""
    def expected(lists):
        return [[dot(f, norm_list([sum(col) / len(ts) for col in zip(*ts)])) for ts in lists] for f in F_FULL]
    check(run("clip_d", features, bank, DescriptorConfig(averaging="embedding")), expected(DESC))
    check(run("waffle", features, bank, WaffleConfig(averaging="embedding")), expected([DESC[1], DESC[0][:1]]))


def test_descriptor_averagings_rank_classes_differently():
    """A class whose sentences disagree has a short mean: cosine averaging penalises it, the
    official embedding averaging does not. Image f = (1, 0): class 0's sentences (1, 0) and (0, 1)
    give mean cos 0.5 but cos(f, normalise((.5, .5))) = 0.707; class 1's single sentence (0.6, 0.8)
    gives 0.6 either way: by hand, cosine picks class 1, embedding picks class 0."""
    bank = TextBank(classnames=["a", "b"], clip_d=padded([[[1.0, 0.0], [0.0, 1.0]], [[0.6, 0.8]]]))
    feats = ImageFeatures(full=torch.tensor([[1.0, 0.0]]))
    cosine = run("clip_d", feats, bank, DescriptorConfig(averaging="cosine"))
    embedding = run("clip_d", feats, bank, DescriptorConfig(averaging="embedding"))
    check(cosine, [[0.5, 0.6]])
    check(embedding, [[math.sqrt(0.5), 0.6]])
    assert cosine.argmax().item() == 1 and embedding.argmax().item() == 0


def test_cupl(features, bank):
    classes = [norm_list([sum(col) / len(ts) for col in zip(*ts)]) for ts in DESC]
    check(run("cupl", features, bank), [[dot(f, t) for t in classes] for f in F_FULL])


def wca_expected(full, crops, form, crop_scale=math.exp(4), desc_scale=math.exp(2)):
    out = []
    for f, cs in zip(full, crops):
        w = softmax([crop_scale * dot(f, c) for c in cs])
        img = [sum(wi * c[d] for wi, c in zip(w, cs)) for d in range(3)]
        row = []
        for ts, p in zip(DESC, PROMPTS):
            v = softmax([desc_scale * dot(t, p) for t in ts])
            txt = [sum(vj * t[d] for vj, t in zip(v, ts)) for d in range(3)]
            if form == "code":
                row.append(dot(norm_list(img), norm_list(txt)))
            else:  # sum_i sum_j w_i v_j cos(f_i, t_j)
                row.append(sum(wi * vj * dot(c, t) for wi, c in zip(w, cs) for vj, t in zip(v, ts)))
        out.append(row)
    return out


@pytest.mark.parametrize("form", ["code", "paper"])
def test_wca_both_forms(features, bank, form):
    check(run("wca", features, bank, WCAConfig(form=form)), wca_expected(F_FULL, CROPS, form))


def test_wca_official_draws_resample_the_pool(features, bank):
    """The official protocol: per draw, draw_size crops picked from the pool with replacement,
    the same picks for every image, scored as WCA over the picked crops; picks differ per draw."""
    from glocal.methods.wca import draw_picks

    config = WCAConfig(n_crops=3, draws=4, draw_size=6)
    spec = get_method("wca")
    assert spec.draws_for(config) == 4 and spec.draws_for(WCAConfig()) == 1
    picks = [draw_picks(config, 3, d).tolist() for d in range(4)]
    assert all(len(p) == 6 and set(p) <= {0, 1, 2} for p in picks)
    assert len({tuple(p) for p in picks}) > 1  # draws differ (6 picks from 3: repeats are certain)
    for d, p in enumerate(picks):
        chosen = [[cs[i] for i in p] for cs in CROPS]
        check(spec.score(features, bank, config, draw=d), wca_expected(F_FULL, chosen, "code"))
    # draw_size=None: the whole pool, as glocal's single draw
    check(run("wca", features, bank, WCAConfig()), wca_expected(F_FULL, CROPS, "code"))


def test_wca_forms_differ(features, bank):
    code = run("wca", features, bank, WCAConfig(form="code"))
    paper = run("wca", features, bank, WCAConfig(form="paper"))
    assert not torch.allclose(code, paper)


def abs_expected(crops, soft, m=None, temp=0.03):
    desc = [ts[:m] if m else ts for ts in DESC]
    out = []
    for cs in crops:
        if soft:
            score = [0.0, 0.0]
            for c in cs:
                pairs = [(k, dot(c, t) / temp) for k, ts in enumerate(desc) for t in ts]
                p = softmax([s for _, s in pairs])
                for (k, s), pk in zip(pairs, p):
                    score[k] += pk * s
        else:
            score = [sum(sum(dot(c, t) for t in ts) / len(ts) for c in cs) / len(cs) for ts in desc]
        out.append(score)
    return out


def test_abs_soft_matching_elementwise(features, bank):
    both = [r + f for r, f in zip(CROPS, FEAT)]
    check(run("abs", features, bank, ABSConfig()), abs_expected(both, soft=True))


def test_abs_switches(features, bank):
    check(run("abs", features, bank, ABSConfig(use_feature=False)), abs_expected(CROPS, soft=True))
    check(run("abs", features, bank, ABSConfig(use_raw=False)), abs_expected(FEAT, soft=True))
    both = [r + f for r, f in zip(CROPS, FEAT)]
    check(run("abs", features, bank, ABSConfig(soft_matching=False)), abs_expected(both, soft=False))


def test_abs_first_m_descriptions(features, bank):
    both = [r + f for r, f in zip(CROPS, FEAT)]
    check(run("abs", features, bank, ABSConfig(n_descriptions=1)), abs_expected(both, soft=True, m=1))


def test_abs_ignores_padding_sentences(features):
    """A padded slot must not receive probability mass: padding with a vector equal to a crop
    would dominate the softmax if it were not masked."""
    lists = [DESC[0], DESC[1]]
    bank = TextBank(classnames=["a", "b"], descriptions=padded(lists))
    bank_padded = Padded(
        torch.cat([bank.descriptions.emb, torch.tensor(CROPS[0][0]).expand(2, 1, 3)], dim=1),
        torch.cat([bank.descriptions.mask, torch.zeros(2, 1, dtype=torch.bool)], dim=1),
    )
    a = run("abs", features, bank, ABSConfig())
    b = run("abs", features, TextBank(classnames=["a", "b"], descriptions=bank_padded), ABSConfig())
    assert torch.allclose(a, b)


def test_lgca_aggregation_elementwise(features, bank):
    steps = [CROPS, [row[:2] for row in FEAT]]
    cfg = LGCAConfig(n_crops=3, steps=1, top_k=2)
    # full-image term: cos(f, normalise(sum_j v_j t_j)) with WCA description weights
    full_term = []
    for f in F_FULL:
        row = []
        for ts, p in zip(DESC, PROMPTS):
            v = softmax([math.exp(2) * dot(t, p) for t in ts])
            row.append(dot(f, norm_list([sum(vj * t[d] for vj, t in zip(v, ts)) for d in range(3)])))
        full_term.append(row)
    terms = [full_term] + [wca_expected(F_FULL, s, "code") for s in steps]
    expected = [[sum(t[b][c] for t in terms) / 3 for c in range(2)] for b in range(2)]
    check(run("lgca", features, bank, cfg), expected)
    weighted = LGCAConfig(n_crops=3, steps=1, top_k=2, step_weights=(0.5, 0.25, 0.25))
    expected_w = [[0.5 * terms[0][b][c] + 0.25 * terms[1][b][c] + 0.25 * terms[2][b][c] for c in range(2)] for b in range(2)]
    check(run("lgca", features, bank, weighted), expected_w)


@pytest.mark.parametrize("name", method_names())
def test_every_method_scores_shape_and_names_missing_inputs(name, features, bank):
    spec = get_method(name)
    config = spec.config_cls() if spec.config_cls else NoConfig()
    if isinstance(config, LGCAConfig):
        config = LGCAConfig(n_crops=3, steps=1, top_k=2)
    scores = spec.score(features, bank, config)
    assert scores.shape == (2, 2) and torch.isfinite(scores).all()
    empty_bank = TextBank(classnames=["a", "b"])
    with pytest.raises(ValueError, match="text bank has no"):
        spec.score(features, empty_bank, config)


def test_registry_rejects_unknown_names_all_at_once():
    from glocal.methods import validate_methods

    with pytest.raises(ValueError, match=r"\['nope', 'absx'\]"):
        validate_methods(["clip", "nope", "absx"])


def test_config_validation_and_presets():
    from glocal.config import PRESETS, config_hash

    assert PRESETS["abs-paper"].n_crops == 60 and PRESETS["abs-paper"].alpha == 0.5 and PRESETS["abs-paper"].pairing == "paper"
    assert PRESETS["abs-code"].n_crops == 50 and PRESETS["abs-code"].alpha == 0.6 and PRESETS["abs-code"].pairing == "code"
    assert config_hash(PRESETS["abs-paper"]) == config_hash(ABSConfig())
    assert config_hash(PRESETS["abs-paper"]) != config_hash(PRESETS["abs-code"])
    with pytest.raises(ValueError, match="K\\*T"):
        LGCAConfig(n_crops=10, steps=3, top_k=5)
    with pytest.raises(ValueError, match="alpha"):
        ABSConfig(alpha=0.95, beta=0.9)
