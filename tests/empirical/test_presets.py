"""The CPU presets at the paper's learning-rate ratios (ring8-paper, gauss-mlp-paper)."""

import math

import pytest
import torch

from empirical import sweep
from empirical import train as train_module
from empirical.presets import get_preset
from empirical.store import Cell

# Sato & Iiduka's DCGAN rates (α_D, α_G), reference.md §1 (the official scripts), and each CPU preset's one factor.
PAPER_DCGAN = {"adam": (3e-4, 1e-4), "adabelief": (3e-5, 3e-4), "rmsprop": (3e-5, 1e-4)}
PAPER_FACTORS = {"ring8-paper": 20.0, "gauss-mlp-paper": 10.0}


@pytest.mark.parametrize("preset", sorted(PAPER_FACTORS))
@pytest.mark.parametrize("optimizer", sorted(PAPER_DCGAN))
def test_a_paper_ratio_preset_trains_each_optimizer_at_the_papers_rates_times_its_factor(preset, optimizer):
    base = get_preset(preset)
    expected = tuple(PAPER_FACTORS[preset] * rate for rate in PAPER_DCGAN[optimizer])
    config = Cell(64, 0, 1.0, optimizer).config(base)  # what a sweep with --optimizers ... trains
    via_flag = base.with_(optimizer=optimizer)  # what `python -m empirical.train --optimizer ...` trains
    for lr_d, lr_g in ((config.lr_d, config.lr_g), (via_flag.lr_d, via_flag.lr_g), base.rates_for(optimizer)):
        assert math.isclose(lr_d, expected[0], rel_tol=1e-12) and math.isclose(lr_g, expected[1], rel_tol=1e-12)
    assert config.optimizer == optimizer
    assert math.isclose(config.lr_d / config.lr_g, PAPER_DCGAN[optimizer][0] / PAPER_DCGAN[optimizer][1])


def test_an_rmsprop_cell_of_ring8_paper_builds_rmsprop_at_the_tables_rates(monkeypatch):
    torch.set_num_threads(1)
    built = []

    def recording(name, params, lr, **kwargs):
        opt = make(name, params, lr, **kwargs)
        built.append((type(opt).__name__, opt.param_groups[0]["lr"]))
        return opt

    make = train_module.make_optimizer
    monkeypatch.setattr(train_module, "make_optimizer", recording)
    base = get_preset("ring8-paper").with_(width=8, max_steps=1, n_eval=50, n_reference=200, device="cpu")
    result = sweep.run_cell(base, Cell(16, 0, 1.0, "rmsprop"))
    lr_d, lr_g = (20.0 * rate for rate in PAPER_DCGAN["rmsprop"])
    assert [name for name, _ in built] == ["RMSprop", "RMSprop"]
    assert math.isclose(built[0][1], lr_d) and math.isclose(built[1][1], lr_g)  # D's optimizer first, then G's
    assert result.steps_run == 1 and result.config.batch_size == 16
