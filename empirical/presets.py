"""Named training setups whose defaults make steps-to-target measurable on a 2-core CPU (docs/benchmarks.md).

Each preset keeps the design card's ratio α_D/α_G = 4 (2e-4 / 5e-5), scaled up together where training at the
card's rates would take too long on a CPU. Targets are FIDs *at the stated n_eval* (FID is biased at small n).
"""

from __future__ import annotations

from empirical.config import TrainConfig
from empirical.errors import EmpiricalInputError

PRESETS: dict[str, TrainConfig] = {
    # Calibrated (docs/benchmarks.md): 8 modes on the unit circle, std 0.01. FID <= 4 on 5000 samples is about the
    # score of all 8 modes at ~10σ spread (real-vs-real ≈ 0.1; half the modes ≈ 23; 3σ modes ≈ 0.3).
    # α = 5 × (2e-4, 5e-5). Median K over 3 seeds falls 5.0x from b = 4 to b = 512; eval_every is <= 3% of K.
    "ring8": TrainConfig(
        data="ring8", model="mlp", z_dim=2, width=128, depth=3, loss="bce", optimizer="adam",
        lr_d=1e-3, lr_g=2.5e-4, batch_size=64, max_steps=4000, eval_every=5, n_eval=5000, target_fid=4.0,
        features="mixture", n_reference=50_000,
    ),
    # NOT yet calibrated: the MLP GAN on grid25 reaches its best FID and then drifts away at every b and α tried,
    # so K(b) falls only ~2.4x over b = 4..512 (one seed). The design card's α; target FID 20 on 10,000 samples
    # (real-vs-real ≈ 1–1.7).
    "grid25": TrainConfig(
        data="grid25", model="mlp", z_dim=2, width=128, depth=3, loss="bce", optimizer="adam",
        lr_d=2e-4, lr_g=5e-5, batch_size=64, max_steps=6000, eval_every=20, n_eval=10_000, target_fid=20.0,
        features="mixture", n_reference=50_000,
    ),
    # NOT yet calibrated: at these settings the 8-px DCGAN is limited by α, not by gradient noise: median K falls
    # only 1.7x over b = 4..512 (2 seeds). FID <= 200 on 1000 samples (real-vs-real, bootstrap, ≈ 5.6; uniform
    # noise ≈ 1900); α = 5 × (2e-4, 5e-5).
    "digits": TrainConfig(
        data="digits", image_size=8, model="dcgan", z_dim=32, width=32, loss="bce", optimizer="adam",
        lr_d=1e-3, lr_g=2.5e-4, batch_size=64, max_steps=4000, eval_every=20, n_eval=1000, target_fid=200.0,
        features="digits",
    ),
}  # fmt: skip


def get_preset(name: str) -> TrainConfig:
    if name not in PRESETS:
        raise EmpiricalInputError(f"unknown preset {name!r}; expected one of {', '.join(PRESETS)}")
    return PRESETS[name]
