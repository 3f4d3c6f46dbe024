"""The typed run request and the plan resolved from it once (glocal.run.request, glocal.run.plan)."""

import pytest

from glocal.config import ABSConfig, LGCAConfig, WCAConfig
from glocal.run.request import NOT_STORED, RunRequest
from glocal.run.plan import plan_run


def request(**changes) -> RunRequest:
    return RunRequest.of(**{"dataset": "d", "model": "m", "methods": ["clip", "abs", "wca", "lgca"], "attention_model": "dino", **changes})


def test_a_plan_resolves_methods_kinds_configs_and_attention_once():
    plan = plan_run(request(n_crops=7, presets={"abs": "abs-code"}, overrides={"wca": {"min_scale": 0.3}}))
    assert plan.methods == ["clip", "abs", "wca", "lgca"]
    assert plan.needs == {"full", "raw", "feat", "wca", "lgca"}
    assert plan.text_needs == {"prompts", "descriptions"}
    assert set(plan.configs) == {"abs_config", "wca_config", "lgca_config"}
    assert isinstance(plan.configs["abs_config"], ABSConfig) and plan.configs["abs_config"].n_crops == 7
    assert isinstance(plan.configs["wca_config"], WCAConfig) and plan.configs["wca_config"].min_scale == 0.3
    assert isinstance(plan.configs["lgca_config"], LGCAConfig)
    assert plan.attention == "dino" and plan.text_guided
    assert plan.configs["abs_config"].feature_top_k == 20 and ABSConfig().feature_top_k is None  # abs-code's, not the default's


def test_a_plan_keys_only_what_decides_each_kind():
    """Text decides LGCA's crops only; the attention maps decide ABS's only; the uniform source
    loads no model, so its key ignores the attention model."""
    plan = plan_run(request())
    parts = plan.feature_parts("d", "fp", "model-key", "attention-key", "text-key")
    other_text = plan.feature_parts("d", "fp", "model-key", "attention-key", "other-text")
    other_maps = plan.feature_parts("d", "fp", "model-key", "other-maps", "text-key")
    assert {k for k in parts if parts[k] != other_text[k]} == {"lgca"}
    assert {k for k in parts if parts[k] != other_maps[k]} == {"raw", "feat"}
    uniform = plan_run(request(methods=["abs"], overrides={"abs": {"attention": "uniform"}}, attention_model=None))
    assert uniform.attention == "uniform"
    assert uniform.attention_key("d", "fp", "mk", "dino-a") == uniform.attention_key("d", "fp", "mk", "dino-b")
    assert plan.attention_key("d", "fp", "mk", "dino-a") != plan.attention_key("d", "fp", "mk", "dino-b")


@pytest.mark.parametrize("changes, problem", [
    ({"methods": ["clip", "nope"]}, "unknown method"),
    ({"presets": {"abs": "abs-nope"}}, "abs-nope"),
    ({"overrides": {"abs": {"alpah": 1}}}, "alpah"),
    ({"workers": 2}, "--workers needs --cluster"),
    ({"score_memory": "lots"}, "lots"),
    ({"extra_needs": ["nope"]}, "unknown feature kinds"),
    ({"methods": ["clip"], "extra_needs": ["wca"]}, "no method of this run configures"),
    ({"attention_model": None}, "needs --attention-model"),
])
def test_a_bad_request_is_refused_by_its_plan(changes, problem):
    with pytest.raises((ValueError, KeyError), match=problem):  # (an unknown preset is a KeyError, as everywhere)
        plan_run(request(**changes))


def test_a_request_names_an_unknown_field():
    with pytest.raises(TypeError, match="n_crop"):
        RunRequest.of(dataset="d", model="m", methods=["clip"], n_crop=3)


def test_stored_params_rebuild_the_request_without_its_sources_and_placement():
    """What a run stores is what describe's re-score rebuilds it from: everything but where its
    descriptions came from and where it ran."""
    full = request(presets={"abs": "abs-code"}, overrides={"wca": {"min_scale": 0.3}}, extra_needs=["wca"], description_set="s",
                   descriptions="f.json", reuse_encode="k", cluster="local", workers=2, batch_size=8, compile=True)
    params = full.stored_params()
    assert not set(params) & NOT_STORED
    assert RunRequest.of(**params) == full.replace(description_set=None, descriptions=None, reuse_encode=None, cluster=None, workers=None)
    assert params["methods"] == ["clip", "abs", "wca", "lgca"] and params["extra_needs"] == ["wca"]
