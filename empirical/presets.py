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
    # Calibrated (docs/benchmarks.md): 25 modes on {-4..4}², std 0.05. α = 4 × (2e-4, 5e-5); FID <= 20 on 10,000
    # samples (real-vs-real 0.2–0.7). Median K over 3 seeds falls 6.7x from b = 4 to b = 512 (about 4x over 5
    # seeds); eval_every is <= 2.2% of K. The GAN drifts away after its best FID, so K is a first crossing.
    "grid25": TrainConfig(
        data="grid25", model="mlp", z_dim=2, width=128, depth=3, loss="bce", optimizer="adam",
        lr_d=8e-4, lr_g=2e-4, batch_size=64, max_steps=3000, eval_every=5, n_eval=10_000, target_fid=20.0,
        features="mixture", n_reference=50_000,
    ),
    # Calibrated, but fragile (docs/benchmarks.md): 8-px DCGAN, WGAN-GP (critic without normalisation), α = 160 ×
    # (2e-4, 5e-5); FID <= 70 on 1000 samples (real-vs-real 2.3–2.9). Median K over 3 seeds falls 6.0x from b = 4
    # to b = 512, but K is flat from b = 8 up: the fall comes from b = 4 alone, and eval_every 4 instead of 3 gives
    # 3.4x. BCE with Adam could not meet the bar at any rate or target tried.
    "digits": TrainConfig(
        data="digits", image_size=8, model="dcgan", z_dim=32, width=32, d_norm="none", loss="wgan-gp",
        optimizer="adam", lr_d=0.032, lr_g=0.008, batch_size=64, max_steps=2000, eval_every=3, n_eval=1000,
        target_fid=70.0, features="digits",
    ),
}  # fmt: skip


def get_preset(name: str) -> TrainConfig:
    if name not in PRESETS:
        raise EmpiricalInputError(f"unknown preset {name!r}; expected one of {', '.join(PRESETS)}")
    return PRESETS[name]
