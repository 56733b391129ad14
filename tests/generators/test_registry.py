from __future__ import annotations

import pytest

from synthgate.errors import UsageError
from synthgate.generators import GENERATORS, GeneratorKind, Preset, generator_spec, preset
from synthgate.generators.config import DiffusionConfig, StyleGAN2Config


def test_every_kind_has_its_parts():
    assert set(GENERATORS) == set(GeneratorKind)
    for kind, spec in GENERATORS.items():
        assert spec.kind is kind and spec.config_class.kind is kind
        assert set(spec.presets) == set(Preset)
        assert all(cfg.kind is kind and isinstance(cfg.model, spec.config_class) for cfg in spec.presets.values())
        assert spec.trainer().kind is kind
    assert generator_spec("diffusion").config_class is DiffusionConfig
    assert generator_spec("stylegan2").config_class is StyleGAN2Config
    assert (generator_spec("diffusion").main_loss, generator_spec("stylegan2").main_loss) == ("loss", "loss_g")


def test_size_checks_say_what_each_kind_needs():
    diffusion, gan = generator_spec("diffusion"), generator_spec("stylegan2")
    unet = preset("diffusion").model  # three levels: sides divisible by 4
    assert diffusion.size_problem(unet, 64, 48) is None
    assert "divisible by 4" in (diffusion.size_problem(unet, 64, 50) or "")
    gan_model = preset("stylegan2").model
    assert gan.size_problem(gan_model, 64, 64) is None
    for h, w in ((48, 48), (64, 32), (4, 4)):
        assert "power-of-two" in (gan.size_problem(gan_model, h, w) or "")


def test_unknown_kind_is_a_usage_error_listing_the_kinds():
    with pytest.raises(UsageError, match="diffusion, stylegan2"):
        generator_spec("vae")
