"""The noise monitor for a user's own loop (empirical/monitor.py): its estimates against closed forms, its two modes
against each other, no side effect on training, the constants file theory.critical reads, one-line errors."""

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from empirical.gradients import ratio_of_means, weighted_split_batch_noise_estimate
from empirical.monitor import NoiseMonitor
from empirical.optimizers import step_denominator
from theory import critical
from theory.schema import load_constants


class Mean(nn.Module):
    """A 'player' with the loss 0.5·mean_i ‖w − x_i‖²: per-sample gradient w − x_i, so for x ~ N(μ, Σ) the full
    gradient is G = w − μ and the per-sample covariance is Σ: both terms of B_simple in closed form."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(dim))

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * (self.w - x).square().sum(1).mean()


def tiny_gan(seed: int = 0):
    torch.manual_seed(seed)
    g = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))
    d = nn.Sequential(nn.Linear(2, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))
    return d, g


def d_loss(d, g):
    def loss(real, z):
        fake = g(z).detach()
        return nn.functional.softplus(-d(real)).mean() + nn.functional.softplus(d(fake)).mean()
    return loss


def g_loss(d, g):
    return lambda z: nn.functional.softplus(-d(g(z))).mean()


def test_one_measurement_is_the_split_batch_formula_on_the_halves_mean_gradients():
    player = Mean(3)
    with torch.no_grad():
        player.w.copy_(torch.tensor([1.0, -2.0, 0.5]))
    x = torch.randn(10, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float32)
    monitor = NoiseMonitor(player, nn.Linear(1, 1), every=1)
    m = monitor.observe(0, "D", player.loss, x)
    g_a = (player.w - x[:5].mean(0)).double().detach()  # the mean gradient of each half, by hand
    g_b = (player.w - x[5:].mean(0)).double().detach()
    assert m.half == 5
    assert m.grad_norm_sq == pytest.approx(float(g_a @ g_b), rel=1e-6)
    assert m.trace_sigma == pytest.approx(5 * float((g_a - g_b).square().sum()) / 2, rel=1e-6)
    assert m.grad_norm == pytest.approx(float(((g_a + g_b) / 2).norm()), rel=1e-6)


def test_the_estimates_are_unbiased_for_the_closed_forms_and_b_simple_follows():
    """x ~ N(μ, diag(s²)): ‖G‖² = ‖w − μ‖² = 1.25 and tr Σ = Σ s² = 14, so B_simple = 11.2. The means of 4000
    measurements at b = 32 lie within 3 standard errors (0.05 and 0.4 here) of them."""
    player = Mean(3)
    mu, s = torch.tensor([1.0, 0.5, 0.0]), torch.tensor([1.0, 2.0, 3.0])
    rng = torch.Generator().manual_seed(1)
    monitor = NoiseMonitor(player, nn.Linear(1, 1), every=1)
    for step in range(4000):
        monitor.observe(step, "D", player.loss, mu + s * torch.randn(32, 3, generator=rng, dtype=torch.float64))
    norms = np.array([m.grad_norm_sq for m in monitor.measurements])
    traces = np.array([m.trace_sigma for m in monitor.measurements])
    assert abs(norms.mean() - 1.25) < 3 * norms.std() / math.sqrt(len(norms))
    assert abs(traces.mean() - 14.0) < 3 * traces.std() / math.sqrt(len(traces))
    scale = monitor.noise_scale("D", since=0)
    assert scale.low <= scale.value <= scale.high and scale.n == 4000
    assert scale.value == pytest.approx(14.0 / 1.25, rel=0.05)


def test_reuse_grad_gives_the_halves_of_two_backward_passes():
    d, g = tiny_gan()
    real, z = torch.randn(64, 2), torch.randn(64, 2)
    both = NoiseMonitor(d, g, every=1).observe(0, "D", d_loss(d, g), real, z)
    d.zero_grad()
    d_loss(d, g)(real, z).backward()  # the user's own backward on the whole batch
    reused = NoiseMonitor(d, g, every=1).observe(0, "D", d_loss(d, g), real, z, reuse_grad=True)
    for field in ("trace_sigma", "grad_norm_sq", "grad_norm"):
        assert getattr(reused, field) == pytest.approx(getattr(both, field), rel=1e-5, abs=1e-9)
    with pytest.raises(ValueError, match="reuse_grad needs an even batch"):  # .grad of 64, halves of 31
        NoiseMonitor(d, g, every=1).observe(0, "D", d_loss(d, g), real[:63], z[:63], reuse_grad=True)
    d.zero_grad(set_to_none=True)
    with pytest.raises(ValueError, match="no .grad; call observe right after the backward"):
        NoiseMonitor(d, g, every=1).observe(0, "D", d_loss(d, g), real, z, reuse_grad=True)


def test_the_preconditioned_terms_weight_the_halves_by_adams_state():
    d, g = tiny_gan()
    opt = torch.optim.Adam(d.parameters(), lr=1e-3)
    real, z = torch.randn(32, 2), torch.randn(32, 2)
    monitor = NoiseMonitor(d, g, optimizers={"D": opt}, every=1)
    assert monitor.observe(0, "D", d_loss(d, g), real, z).weighted_trace is None  # no state before the first step
    for _ in range(3):
        opt.zero_grad()
        d_loss(d, g)(real, z).backward()
        opt.step()
    m = monitor.observe(1, "D", d_loss(d, g), real, z)
    params = list(d.parameters())
    halves = [torch.cat([x.reshape(-1).double() for x in torch.autograd.grad(d_loss(d, g)(real[i:i + 16],
                                                                                          z[i:i + 16]), params)])
              for i in (0, 16)]
    expected = weighted_split_batch_noise_estimate(*halves, 16, 1.0 / step_denominator(opt, d))
    assert (m.weighted_trace, m.weighted_norm_sq) == pytest.approx(expected, rel=1e-6)


def run_loop(every: int | None, steps: int = 12):
    """A user's plain loop: D with Adam, G with Adam, fresh z per step from the global RNG; monitored every `every`
    steps (None: not). Returns the final parameters and the monitor."""
    d, g = tiny_gan(3)
    opt_d, opt_g = torch.optim.Adam(d.parameters(), 2e-3), torch.optim.Adam(g.parameters(), 5e-4)
    monitor = None if every is None else NoiseMonitor(d, g, {"D": opt_d, "G": opt_g}, every=every)
    torch.manual_seed(7)
    for step in range(steps):
        real, z = torch.randn(16, 2) + 2, torch.randn(16, 2)
        opt_d.zero_grad()
        d_loss(d, g)(real, z).backward()
        if monitor is not None:
            monitor.observe(step, "D", d_loss(d, g), real, z, reuse_grad=step % 2 == 0)
        opt_d.step()
        z = torch.randn(16, 2)
        opt_g.zero_grad()
        loss = g_loss(d, g)(z)
        if monitor is not None:
            monitor.observe(step, "G", lambda z: g_loss(d, g)(z) + 0 * torch.rand(()), z)  # a loss that draws
        loss.backward()
        opt_g.step()
    return torch.cat([p.detach().flatten() for p in [*d.parameters(), *g.parameters()]]), monitor


def test_a_monitored_loop_trains_bit_for_bit_as_the_same_loop_without_it():
    theta, monitor = run_loop(3)
    assert torch.equal(theta, run_loop(None)[0])
    assert [m.step for m in monitor.measurements if m.player == "G"] == [0, 3, 6, 9]  # every 3 steps, from 0


def test_batchnorm_statistics_and_modes_are_left_as_they_were():
    g = nn.Sequential(nn.Linear(2, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    d = nn.Sequential(nn.Linear(2, 1))
    before = [b.clone() for b in g.buffers()]
    NoiseMonitor(d, g, every=1).observe(0, "G", lambda z: d(g(z)).mean(), torch.randn(32, 2))
    assert all(torch.equal(a, b) for a, b in zip(before, g.buffers(), strict=True)) and g.training


def test_the_file_it_writes_is_read_by_theory_critical(tmp_path, capsys):
    _, monitor = run_loop(1, steps=20)
    monitor.report_fid(19, 3.5)
    path = tmp_path / "constants.json"
    monitor.write(path)
    read = load_constants(path)
    assert read.values["alpha_D"] == 2e-3 and read.values["beta2_G"] == 0.999
    assert read.values["dim_D"] == sum(p.numel() for p in monitor.modules["D"].parameters())
    assert read.noise_scale["D"] == pytest.approx(monitor.noise_scale("D").value)
    assert read.noise_scale_preconditioned["G"] == pytest.approx(monitor.noise_scale("G", preconditioned=True).value)
    assert "user's training loop" in read.noise_scale_details["D"]["method"]
    assert json.loads(path.read_text())["source"]["fid"] == [[19, 3.5]]
    predictions = monitor.predictions()
    assert predictions["2·B_simple"]["joint"] == pytest.approx(2 * max(read.noise_scale.values()))
    # L and Δ are not measured in a loop: the user gives them as flags, the file the rest
    assert critical.main(["--constants", str(path), "--smoothness-d", "10", "--smoothness-g", "10", "--gap-d", "1",
                          "--gap-g", "1"]) == 0
    out = capsys.readouterr().out
    assert f"B_simple {read.noise_scale['D']:.5g}" in out and "2·B_noise,H" in out
    assert any(line.split()[:2] == ["sigma2_D", f"{read.values['sigma2_D']:.7g}"] and "file" in line
               for line in out.splitlines())


def test_ratio_of_means_is_none_when_the_signal_is_unresolved_and_brackets_its_value():
    assert ratio_of_means([1.0, 2.0], [-1.0, 0.5]) is None
    value, (lo, hi) = ratio_of_means([4.0, 6.0, 5.0], [1.0, 2.0, 1.5])
    assert value == pytest.approx(15 / 4.5) and lo <= value <= hi


@pytest.mark.parametrize(("call", "words"), [
    (lambda m, d, g: m.observe(0, "X", d_loss(d, g), torch.randn(4, 2), torch.randn(4, 2)), "player must be D or G"),
    (lambda m, d, g: m.observe(0, "D", d_loss(d, g), torch.randn(1, 2), torch.randn(1, 2)), "at least 2 samples"),
    (lambda m, d, g: m.observe(0, "D", d_loss(d, g), torch.randn(4, 2), torch.randn(6, 2)), "share their first"),
    (lambda m, d, g: m.observe(0, "D", lambda real: d(real), torch.randn(4, 2)), "must return a scalar"),
    (lambda m, d, g: m.report_fid(0, math.nan), "fid must be a finite number"),
    (lambda m, d, g: m.write("x.json"), "nothing measured yet"),
])
def test_bad_calls_are_one_line_errors(call, words):
    d, g = tiny_gan()
    with pytest.raises(ValueError, match=words):
        call(NoiseMonitor(d, g, every=1), d, g)
    with pytest.raises(ValueError, match="every must be a positive"):
        NoiseMonitor(d, g, every=0)


def test_two_batch_sizes_as_ddp_gives_them_are_mccandlishs_estimator_and_unbiased():
    """Four 'workers' of 8 samples each: one worker's mean gradient (b = 8) and the all-reduced one (b = 32). Over
    3000 draws the estimates' means are the closed forms of the Mean player (‖G‖² = 1.25, tr Σ = 14)."""
    player = Mean(3)
    mu, s = torch.tensor([1.0, 0.5, 0.0]), torch.tensor([1.0, 2.0, 3.0])
    rng = torch.Generator().manual_seed(2)
    monitor = NoiseMonitor(player, nn.Linear(1, 1), every=1)
    for step in range(3000):
        x = mu + s * torch.randn(32, 3, generator=rng, dtype=torch.float64)
        with torch.no_grad():
            local = (player.w - x[:8].mean(0)).square().sum()  # worker 0's gradient, before the all-reduce
            whole = (player.w - x.mean(0)).square().sum()  # the all-reduced gradient of the global batch
        m = monitor.observe_two_batches(step, "D", float(local), float(whole), 8, 32)
    assert m.half == 8 and m.trace_sigma == pytest.approx((float(local) - float(whole)) / (1 / 8 - 1 / 32))
    norms = np.array([m.grad_norm_sq for m in monitor.measurements])
    traces = np.array([m.trace_sigma for m in monitor.measurements])
    assert abs(norms.mean() - 1.25) < 3 * norms.std() / math.sqrt(len(norms))
    assert abs(traces.mean() - 14.0) < 3 * traces.std() / math.sqrt(len(traces))
    assert NoiseMonitor(player, nn.Linear(1, 1), every=10).observe_two_batches(5, "D", 1.0, 0.5, 8, 32) is None


def test_the_preconditioner_bounds_skip_parameters_without_state_as_second_moment_bounds_does():
    """A parameter that never had a gradient has no Adam state (h = +inf in the flat diagonal): h_min/h_max over the
    others are the optimizer's own bounds (empirical.optimizers.second_moment_bounds)."""
    from empirical.optimizers import second_moment_bounds

    d = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1))
    unused = nn.Linear(3, 3)  # in D's optimizer and module, never in its loss
    d.add_module("unused", unused)
    g = nn.Linear(2, 2)
    opt = torch.optim.Adam(d.parameters(), lr=1e-3)
    monitor = NoiseMonitor(d, g, optimizers={"D": opt}, every=1)
    loss = lambda x: d[2](d[1](d[0](x))).square().mean()  # noqa: E731
    bounds = []
    for step in range(3):
        x = torch.randn(16, 2)
        opt.zero_grad()
        loss(x).backward()
        opt.step()
        monitor.observe(step, "D", loss, x)
        bounds.append(second_moment_bounds(opt))
    values, _, _ = monitor.constants()  # the smallest and the largest over the measurements, as constants.py keeps
    assert values["h_min_D"] == pytest.approx(min(lo for lo, _ in bounds), rel=1e-6)
    assert values["h_max_D"] == pytest.approx(max(hi for _, hi in bounds), rel=1e-6)
    assert math.isfinite(values["h_max_D"])
