from __future__ import annotations

import json

import pytest

from synthgate.errors import UsageError
from synthgate.generators import (
    DiffusionConfig,
    GeneratorKind,
    Preset,
    Schedule,
    StyleGAN2Config,
    TrainConfig,
    preset,
)


@pytest.mark.parametrize("kind", list(GeneratorKind))
@pytest.mark.parametrize("name", list(Preset))
def test_presets_round_trip_through_json(kind, name):
    cfg = preset(kind, name)
    assert cfg.kind is kind
    back = TrainConfig.from_json(json.loads(json.dumps(cfg.to_json())))
    assert back == cfg


def test_paper_preset_is_the_study_scale():
    cfg = preset("diffusion", "paper")
    assert isinstance(cfg.model, DiffusionConfig)
    assert (cfg.model.timesteps, cfg.model.schedule, cfg.model.channels[0]) == (4000, Schedule.LINEAR, 64)
    tiny, memorize = preset("diffusion", "tiny"), preset("diffusion", "memorize")
    # memorize = the tiny model on a handful of images for longer (the study's small-training-set finding)
    assert memorize.model == tiny.model and memorize.max_images == 4 and tiny.max_images is None
    assert memorize.steps > tiny.steps


def test_unknown_preset_and_keys_are_usage_errors():
    with pytest.raises(UsageError, match="preset"):
        preset("diffusion", "huge")
    data = preset("diffusion").to_json()
    data["model"]["depth"] = 3
    with pytest.raises(UsageError, match=r"model\.depth"):
        TrainConfig.from_json(data)
    data = preset("diffusion").to_json()
    data["model"]["schedule"] = "sigmoid"
    with pytest.raises(UsageError, match="schedule"):
        TrainConfig.from_json(data)


def test_validation_names_the_parameter():
    with pytest.raises(UsageError, match="attention_levels"):
        DiffusionConfig(channels=(8, 16), attention_levels=(False,))
    with pytest.raises(UsageError, match="norm_groups"):
        DiffusionConfig(channels=(8, 12), attention_levels=(False, False), norm_groups=8)
    with pytest.raises(UsageError, match="needs a StyleGAN2Config"):
        TrainConfig(kind=GeneratorKind.STYLEGAN2, model=DiffusionConfig())
    with pytest.raises(UsageError, match="batch_size"):
        TrainConfig(kind=GeneratorKind.DIFFUSION, model=DiffusionConfig(), batch_size=0)
    with pytest.raises(UsageError, match="truncation"):
        StyleGAN2Config(truncation=1.5)
    assert DiffusionConfig(schedule="linear").schedule is Schedule.LINEAR
