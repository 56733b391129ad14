from __future__ import annotations

import math

import pytest
import torch

from synthgate.generators import DiffusionConfig, Prediction, Schedule
from synthgate.generators.diffusion import alphas_cumprod, build_unet, ddim_sample, ddim_timesteps, training_loss


@pytest.mark.parametrize("schedule", list(Schedule))
def test_schedules_decrease_from_one_towards_zero(schedule):
    abar = alphas_cumprod(schedule, 1000)
    assert abar.shape == (1000,)
    assert 0.99 < abar[0] < 1
    assert abar[-1] < 0.01
    assert torch.all(abar[1:] < abar[:-1])


def test_cosine_schedule_matches_its_formula():
    t, T, s = 250, 1000, 0.008
    f = lambda u: math.cos((u / T + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    assert float(alphas_cumprod(Schedule.COSINE, T)[t]) == pytest.approx(f(t + 1) / f(0), rel=1e-9)


def test_ddim_timesteps_cover_the_range_descending():
    ts = ddim_timesteps(100, 5)
    assert ts == sorted(ts, reverse=True) and ts[0] == 99 and ts[-1] == 0 and len(ts) == 5


def _unet():
    cfg = DiffusionConfig(channels=(8, 16), attention_levels=(False, True), norm_groups=4, head_channels=8)
    torch.manual_seed(0)
    return build_unet(cfg, 3).eval()


@pytest.mark.parametrize("prediction", list(Prediction))
def test_ddim_sample_i_depends_only_on_its_seed(prediction):
    model, abar = _unet(), alphas_cumprod(Schedule.COSINE, 100)
    seeds = [11, 22, 33]
    batch = ddim_sample(model, seeds, (3, 8, 8), abar, prediction, steps=4, eta=0.5)
    assert batch.shape == (3, 3, 8, 8) and batch.abs().max() <= 1.0 + 1e-5
    for i, s in enumerate(seeds):  # brute force: one at a time
        one = ddim_sample(model, [s], (3, 8, 8), abar, prediction, steps=4, eta=0.5)
        torch.testing.assert_close(one[0], batch[i], atol=1e-5, rtol=1e-5)
    other = ddim_sample(model, [44], (3, 8, 8), abar, prediction, steps=4, eta=0.5)
    assert (other[0] - batch[0]).abs().max() > 1e-3


class _Oracle(torch.nn.Module):
    """Knows the clean image ``x0`` and predicts the exact epsilon or v for any ``x_t``."""

    def __init__(self, x0: torch.Tensor, abar: torch.Tensor, prediction: Prediction):
        super().__init__()
        self.x0, self.abar, self.prediction = x0, abar, prediction

    def forward(self, x, timesteps):
        a = self.abar[timesteps].float().view(-1, 1, 1, 1)
        if self.prediction is Prediction.EPSILON:
            return (x - a.sqrt() * self.x0) / (1 - a).sqrt()
        return (a.sqrt() * x - self.x0) / (1 - a).sqrt()  # v = sqrt(a) eps - sqrt(1-a) x0, with eps from x_t


@pytest.mark.parametrize("prediction", list(Prediction))
def test_targets_and_sampling_agree_with_an_exact_predictor(prediction):
    # the training target (training_loss) and its inversion (ddim_sample) must describe the same parametrisation:
    # an exact predictor scores zero loss and samples exactly its clean image
    abar = alphas_cumprod(Schedule.LINEAR, 50)
    x0 = torch.rand((3, 3, 4, 4), generator=torch.Generator().manual_seed(0)) * 1.6 - 0.8
    oracle = _Oracle(x0, abar, prediction)
    loss = training_loss(oracle, x0, abar, prediction, torch.Generator().manual_seed(1)).loss
    assert float(loss) < 1e-9
    sampled = ddim_sample(oracle, [5, 6, 7], (3, 4, 4), abar, prediction, steps=10)
    torch.testing.assert_close(sampled, x0, atol=1e-4, rtol=0)
    wrong = Prediction.V if prediction is Prediction.EPSILON else Prediction.EPSILON
    assert float(training_loss(oracle, x0, abar, wrong, torch.Generator().manual_seed(1)).loss) > 1e-3


def test_training_loss_is_mse_against_the_drawn_noise():
    class Zero(torch.nn.Module):
        def forward(self, x, timesteps):
            return torch.zeros_like(x)

    abar = alphas_cumprod(Schedule.COSINE, 100)
    x0 = torch.zeros((4, 2, 8, 8))
    out = training_loss(Zero(), x0, abar, Prediction.EPSILON, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    torch.randint(0, 100, (4,), generator=g)
    noise = torch.randn((4, 2, 8, 8), generator=g)
    assert float(out.loss) == pytest.approx(float(noise.pow(2).mean()), rel=1e-6)
