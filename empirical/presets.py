"""Named training setups: three whose defaults make steps-to-target measurable on a 2-core CPU (docs/benchmarks.md),
and three that follow Sato & Iiduka's GPU experiments (docs/paper-presets.md).

The CPU presets keep the design card's ratio α_D/α_G = 4 (2e-4 / 5e-5), scaled up together where training at the
card's rates would take too long on a CPU. The paper presets take α_D, α_G per optimizer from the paper's table
(config.LR_TABLES). Targets are FIDs *at the stated n_eval* (FID is biased upward at small n).
"""

from __future__ import annotations

from empirical.benchmarks import all_benchmarks
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
    # ---- The paper's GPU experiments (reference.md §1; official scripts iiduka-researches/GANs dcgan.py, wgan-gp.py;
    # docs/paper-presets.md has the full list of differences). Common to the three: FID on n_eval = 10,000 samples
    # scored in memory (the scripts: 50,000 PNGs; E[FID] falls as n grows, so a target met at 10k is met at 50k in
    # expectation and our K is the stricter), evaluated at multiples of 25 steps each >= 1.02× the previous one
    # (K to within 2% + 25/K: 40 evaluations by K = 10^3, ~320 by 4·10^5; the scripts: at step 10,000, then every
    # 500 or 5,000), max_steps 400,000 (the paper's b = 4 first met its target after ~400k steps: raise it if b = 4
    # must finish), minibatches i.i.d. with replacement (the scripts: shuffled epochs). Sweep b = 4..1024.
    #
    # DCGAN on LSUN-Bedroom 64 px (dcgan.py): the PyTorch DCGAN pair, BatchNorm D, BCE, one D then one G step,
    # FID <= 70. Only the first 200,000 images (sorted paths) are loaded: all 3 M at 64 px are 37 GB as uint8 (and
    # 4x that as float for the real statistics), beyond a GPU's or host's memory; 200k are 2.5 GB, 20x the FID
    # sample; a b = 4 run to 4·10^5 steps draws 1.6 M samples, about 8 passes over them (whether a subset changes K
    # is untested). The real statistics use the same 200k images (the script's: a prepared folder of real PNGs).
    "dcgan-lsun": TrainConfig(
        data="folder", data_path="data/lsun-bedroom", data_limit=200_000, image_size=64, model="dcgan", z_dim=100,
        width=64, d_norm="batch", loss="bce", optimizer="adam", lr_d=3e-4, lr_g=1e-4, lr_table="paper-dcgan",
        n_critic=1, batch_size=64, max_steps=400_000, eval_every=25, eval_growth=0.02, n_eval=10_000,
        target_fid=70.0, features="inception",
    ),
    # WGAN-GP on CelebA 64 px (wgan-gp.py): the same generator, FID <= 50. Fixed: the penalty weight is λ = 10
    # applied once (the script applies it twice: λ = 100). Changed: the critic uses LayerNorm (Gulrajani et al.;
    # the script keeps DCGAN's BatchNorm, which couples the samples of the per-sample penalty); images are resized on
    # the short side and center-cropped (the script squashes 178×218 to 64×64). data_limit 162,770: the first
    # 162,770 sorted img_align_celeba files are CelebA's train split, the one the script trains on.
    "wgangp-celeba": TrainConfig(
        data="folder", data_path="data/celeba", data_limit=162_770, image_size=64, model="dcgan", z_dim=100,
        width=64, d_norm="layer", loss="wgan-gp", gp_weight=10.0, optimizer="adam", lr_d=3e-4, lr_g=1e-4,
        lr_table="paper-wgangp", n_critic=1, batch_size=64, max_steps=400_000, eval_every=25, eval_growth=0.02,
        n_eval=10_000, target_fid=50.0, features="inception",
    ),
    # Not in the paper: DCGAN on CIFAR-10 (the 50,000 training images) at its native 32 px (--image-size 64
    # upsamples to the LSUN architecture), the paper's DCGAN rates. FID <= 50 at 10k samples: DCGAN-type CNNs reach
    # about 30–40 at 50k in the literature and FID at 10k is only a few points higher, so a healthy run meets it,
    # while a collapsed or blurry one (FID ~100+) does not.
    "dcgan-cifar10": TrainConfig(
        data="cifar10", data_path="data/cifar10", image_size=32, model="dcgan", z_dim=100, width=64,
        d_norm="batch", loss="bce", optimizer="adam", lr_d=3e-4, lr_g=1e-4, lr_table="paper-dcgan", n_critic=1,
        batch_size=64, max_steps=400_000, eval_every=25, eval_growth=0.02, n_eval=10_000, target_fid=50.0,
        features="inception",
    ),
}  # fmt: skip

# ring8 with AMSGrad (the monotone preconditioner the Adam-type bounds assume), everything else ring8's.
PRESETS["ring8-amsgrad"] = PRESETS["ring8"].with_(optimizer="amsgrad")
# ring8 at the paper's DCGAN rates × 20 (config.LR_TABLES "paper-dcgan-x20"): each optimizer of a sweep
# (--optimizers adam,adabelief,rmsprop) trains at the paper's ratio α_D/α_G for it. Probes (seed 0, 4000 steps, FID
# <= 4): × 10/3 (b = 16, 64) and × 1 (b = 64) left AdaBelief and RMSProp at best FID 90-250; × 10 trained Adam
# (b = 16..128) and AdaBelief (b >= 64) but not RMSProp (b = 16, 64, 128); × 30 trained RMSProp but not AdaBelief
# (b = 8, 32, 256); × 20 reaches with each optimizer at some b (each fails at others: no one factor suits all three).
# max_steps 3000 and the grid 8..512 keep a 3-optimizer sweep near 10 minutes on 2 cores (it took 6).
PRESETS["ring8-paper"] = PRESETS["ring8"].with_(lr_table="paper-dcgan-x20", max_steps=3000)
PRESETS.update({name: config for unit in all_benchmarks() for name, config in unit.presets.items()})

# What a missing default data folder of a paper preset should hold (datasets.check_data_path's one-line error).
DATA_HINTS: dict[str, str] = {
    "data/lsun-bedroom": "the LSUN-Bedroom images (bedroom_train exported from its LMDB as .jpg/.webp files, any "
                         "sub-folders)",
    "data/celeba": "CelebA's aligned images (the 202,599 .jpg files of img_align_celeba)",
    "data/cifar10": "CIFAR-10's python-pickle folder cifar-10-batches-py (or its parent)",
}


CPU_BATCH_SIZES = tuple(2**k for k in range(2, 10))  # 4 .. 512: the calibrated CPU presets' grid
PAPER_BATCH_SIZES = tuple(2**k for k in range(2, 11))  # 4 .. 1024: the paper's experiments
BATCH_GRIDS: dict[str, tuple[int, ...]] = {"dcgan-lsun": PAPER_BATCH_SIZES, "wgangp-celeba": PAPER_BATCH_SIZES,
                                           "dcgan-cifar10": PAPER_BATCH_SIZES}
BATCH_GRIDS["ring8-paper"] = CPU_BATCH_SIZES[1:]  # 8 .. 512


LQ_BATCH_SIZES = tuple(2**k for k in range(0, 11))  # 1 .. 1024: the control game is cheap down to b = 1
BATCH_GRIDS.update({"lqgan": LQ_BATCH_SIZES, "lqgan-adam": LQ_BATCH_SIZES, "lqgan-amsgrad": LQ_BATCH_SIZES})
DEFAULT_SEEDS = (0, 1, 2)
SEED_GRIDS: dict[str, tuple[int, ...]] = {"lqgan": tuple(range(8)), "lqgan-adam": tuple(range(8)),
                                          "lqgan-amsgrad": tuple(range(8)), "gauss-mlp": tuple(range(8)),
                                          "gauss-mlp-sgd": tuple(range(5))}


def default_seeds(name: str) -> tuple[int, ...]:
    """The seeds a sweep of this preset runs when --seeds is not given (the control game's are trained together)."""
    return SEED_GRIDS.get(name, DEFAULT_SEEDS)


def default_batch_sizes(name: str) -> tuple[int, ...]:
    """The batch grid a sweep of this preset runs when --batch-sizes is not given."""
    return BATCH_GRIDS.get(name, CPU_BATCH_SIZES)


def get_preset(name: str) -> TrainConfig:
    if name not in PRESETS:
        raise EmpiricalInputError(f"unknown preset {name!r}; expected one of {', '.join(PRESETS)}")
    return PRESETS[name]
