from __future__ import annotations

import json
import os
from dataclasses import replace

import numpy as np
import pytest
import torch

from synthgate.data.store import read_store, write_store
from synthgate.errors import InputError, UsageError
from synthgate.generators import GeneratorKind, runs, sample_generator, train_generator
from tests.generators.conftest import tiny_config
from tests.sets import make_set


def _log(run_dir):
    return [json.loads(ln) for ln in (run_dir / runs.LOG).read_text().splitlines()]


def _state(run_dir):
    return torch.load(run_dir / runs.CHECKPOINT, weights_only=True)


def _assert_same_state(a, b, path="state"):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), path
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _assert_same_state(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same_state(x, y, f"{path}[{i}]")
    else:
        assert a == b, path


def test_diffusion_loss_falls_on_a_learnable_set(tmp_path):
    data = make_set(n=4, size=16, pattern="brain")
    result = train_generator(tiny_config("diffusion", steps=40, lr=5e-3), data, tmp_path / "run")
    losses = [r["loss"] for r in _log(tmp_path / "run")]
    assert len(losses) == 40 and result.steps == 40 and result.stopped_by == "steps"
    assert np.mean(losses[-8:]) < 0.6 * np.mean(losses[:8])
    assert result.final_loss == pytest.approx(losses[-1])
    for name in (runs.CONFIG, runs.DATA, runs.VERSIONS, runs.TRAIN_IMAGES, runs.CHECKPOINT):
        assert (tmp_path / "run" / name).is_file(), name
    assert result.grids and result.grids[-1].is_file()


@pytest.mark.parametrize("kind", list(GeneratorKind))
def test_resume_gives_the_same_state_as_training_straight_through(tmp_path, kind):
    data = make_set(n=6, size=16, pattern="brain")
    cfg = tiny_config(kind, steps=4)
    straight = train_generator(cfg, data, tmp_path / "a")
    first = train_generator(cfg, data, tmp_path / "b", max_steps=2)
    assert first.steps == 2 and first.stopped_by == "max_steps"
    resumed = train_generator(None, data, tmp_path / "b", resume=True)
    assert resumed.start_step == 2 and resumed.steps == 4
    _assert_same_state(_state(tmp_path / "a"), _state(tmp_path / "b"))
    assert _log(tmp_path / "a") == [
        {**r, "images_per_s": a["images_per_s"], "elapsed_s": a["elapsed_s"]}
        for r, a in zip(_log(tmp_path / "b"), _log(tmp_path / "a"), strict=True)
    ]
    assert straight.losses == resumed.losses


@pytest.mark.parametrize("kind", list(GeneratorKind))
def test_sampling_is_deterministic_and_labels_are_valid(tmp_path, kind):
    data = make_set(n=4, size=16, pattern="brain")
    run = train_generator(tiny_config(kind, steps=2), data, tmp_path / "run").run_dir
    a = sample_generator(run, 5, seed=7, batch_size=2)
    b = sample_generator(run, 5, seed=7, batch_size=5)
    c = sample_generator(run, 5, seed=8)
    np.testing.assert_allclose(a.images, b.images, atol=1e-5)
    np.testing.assert_array_equal(a.seeds, b.seeds)
    assert not np.array_equal(a.seeds, c.seeds) and np.abs(a.images - c.images).max() > 1e-3
    # any one image regenerates from its own seed
    one = sample_generator(run, 1, seeds=[int(a.seeds[3])])
    np.testing.assert_allclose(one.images[0], a.images[3], atol=1e-5)
    assert set(np.unique(a.images[:, a.label_channel]).tolist()) <= {0.0, 1.0, 2.0, 4.0}
    img = np.delete(a.images, a.label_channel, axis=1)
    assert img.min() >= 0 and img.max() <= 1
    assert a.ids[3] == "syn-000003" and set(a.subjects) == {"synthetic"} and set(a.sources) == {str(kind)}
    assert a.channels == data.channels and a.label_map == data.label_map
    stored = read_store(write_store(a, tmp_path / "syn"))
    np.testing.assert_array_equal(stored.seeds, a.seeds)
    assert stored.meta["generator"]["kind"] == str(kind)


def test_max_images_trains_on_a_seeded_subset(tmp_path):
    data = make_set(n=10, size=16, pattern="brain")
    calls: list[tuple[str, int, int]] = []
    r = train_generator(
        tiny_config("diffusion", steps=1, max_images=3), data, tmp_path / "run", progress=lambda *c: calls.append(c)
    )
    assert calls == [("train", 1, 1)]
    lines = (tmp_path / "run" / runs.TRAIN_IMAGES).read_text().splitlines()
    assert r.n_train == 3 and len(lines) == 4 and lines[0] == "id,subject"
    assert {ln.split(",")[0] for ln in lines[1:]} <= set(data.ids)


def test_max_time_stops_early(tmp_path):
    data = make_set(n=4, size=16, pattern="brain")
    r = train_generator(tiny_config("diffusion", steps=1000), data, tmp_path / "run", max_time=1e-6)
    assert r.stopped_by == "max_time" and r.steps == 1
    assert _state(tmp_path / "run")["step"] == 1


def test_input_and_usage_errors(tmp_path):
    data = make_set(n=2, size=12, pattern="brain")
    with pytest.raises(InputError, match="power-of-two"):
        train_generator(tiny_config("stylegan2"), data, tmp_path / "g")
    assert not (tmp_path / "g").exists()  # nothing written for invalid input
    with pytest.raises(InputError, match="divisible by 2"):
        train_generator(tiny_config("diffusion"), make_set(n=2, size=9, pattern="brain"), tmp_path / "d")
    ok = make_set(n=2, size=16, pattern="brain")
    train_generator(tiny_config("diffusion", steps=1), ok, tmp_path / "run")
    with pytest.raises(UsageError, match="already exists"):
        train_generator(tiny_config("diffusion", steps=1), ok, tmp_path / "run")
    with pytest.raises(UsageError, match="needs a config"):
        train_generator(None, ok, tmp_path / "x")
    assert not (tmp_path / "x").exists()
    with pytest.raises(InputError, match="resume with the same"):
        train_generator(None, make_set(n=2, size=32, pattern="brain"), tmp_path / "run", resume=True)
    with pytest.raises(InputError, match="does not hold the images"):
        train_generator(None, make_set(n=2, size=16, seed=1, pattern="brain").subset([1, 0]), tmp_path / "run", resume=True)
    with pytest.raises(InputError, match="is missing"):
        sample_generator(tmp_path, 2)
    with pytest.raises(UsageError, match="--n"):
        sample_generator(tmp_path / "run", 0)
    bad = replace(ok, images=np.where(ok.images == 4, 3, ok.images).astype(np.float32))
    with pytest.raises(InputError, match="outside the label map"):
        train_generator(tiny_config("diffusion"), bad, tmp_path / "bad")


def test_foreach_ema_equals_the_per_parameter_update():
    from synthgate.generators.trainers import ema_update

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    ema = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    model(torch.rand(5, 3))  # moves the batch-norm statistics
    want = [pe.detach() * 0.9 + p.detach() * 0.1 for pe, p in zip(ema.parameters(), model.parameters(), strict=True)]
    ema_update(ema, model, 0.9)
    for got, w in zip(ema.parameters(), want, strict=True):
        torch.testing.assert_close(got.detach(), w)
    for eb, b in zip(ema.buffers(), model.buffers(), strict=True):
        assert torch.equal(eb, b)


@pytest.mark.parametrize("kind", list(GeneratorKind))
def test_compile_option_wraps_the_networks_but_not_their_state(kind):
    from synthgate.generators.registry import build_trainer

    eager = build_trainer(tiny_config(kind), (3, 16, 16), "cpu")
    compiled = build_trainer(tiny_config(kind, compile=True), (3, 16, 16), "cpu")
    nets = ("_forward",) if kind == "diffusion" else ("_G", "_D")
    for name in nets:
        assert getattr(eager, name).__class__.__name__ != "OptimizedModule"
        assert getattr(compiled, name).__class__.__name__ == "OptimizedModule"
    assert eager.state_dict().keys() == compiled.state_dict().keys()  # checkpoints do not depend on --compile
    opts = [eager.opt] if kind == "diffusion" else [eager.opt_g, eager.opt_d]
    assert all(o.param_groups[0]["fused"] for o in opts)  # torch has a fused Adam for the CPU too
    _assert_same_state(eager.state_dict(), compiled.state_dict())


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("SYNTHGATE_TEST_COMPILE") != "1",
                    reason="torch.compile on CPU builds C++ kernels (minutes on a cold cache); SYNTHGATE_TEST_COMPILE=1")
def test_a_compiled_diffusion_step_matches_eager():
    from synthgate.generators.registry import build_trainer

    x = torch.rand((4, 3, 16, 16), generator=torch.Generator().manual_seed(0)) * 2 - 1
    losses = []
    for compile_ in (False, True):
        trainer = build_trainer(tiny_config("diffusion", compile=compile_), (3, 16, 16), "cpu")
        losses.append(float(trainer.step(x, torch.Generator().manual_seed(1), 0)["loss"]))
    assert losses[1] == pytest.approx(losses[0], rel=1e-3)


@pytest.mark.gpu
@pytest.mark.parametrize("kind", list(GeneratorKind))
def test_cuda_steps_use_fused_adam_and_channels_last(kind):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    from synthgate.generators.registry import build_trainer

    trainer = build_trainer(tiny_config(kind), (3, 16, 16), "cuda")
    x = (torch.rand((4, 3, 16, 16)) * 2 - 1).cuda()
    losses = trainer.step(x, torch.Generator().manual_seed(0), 0)
    assert all(v.device.type == "cuda" and bool(torch.isfinite(v)) for v in losses.values())
    opts = [trainer.opt] if kind == "diffusion" else [trainer.opt_g, trainer.opt_d]
    assert all(o.param_groups[0]["fused"] for o in opts)
    net = trainer.model if kind == "diffusion" else trainer.D
    convs = [p for p in net.parameters() if p.dim() == 4 and p.shape[-1] > 1]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
