"""Training and FID-evaluation speed of an image preset against the route of the official TTUR scripts.

    python benchmarks/preset_speed.py [--preset dcgan-cifar10] [--device auto] [--batch-sizes 64,256] [--steps 200]
        [--n-fid 10000] [--image-size 32] [--width 64] [--repeats 3] [--threads N] [--json FILE]
        [any config flag, e.g. --lr-d 1e-4]

(1) Training iterations per second of empirical.train.train() against a bare loop in the style of the PyTorch DCGAN
example that the official scripts build on: the same models, optimizers, losses and in-memory minibatches (the
example's DataLoader would only slow the baseline), n_critic D steps then one G step, and nothing else. train() is
timed between two of its progress callbacks, after --warmup iterations, so its set-up and its FID evaluations are
outside the window (this extends benchmarks/train_overhead.py, which times the ring8 MLPs on one CPU thread).
Goal: ours / bare >= 0.9.

(2) One FID evaluation on N generated samples. Ours: FIDEvaluator (generate -> Inception features -> Fréchet distance
to the cached real statistics, all in memory). Baseline, the official scripts' folder route: generate -> write N PNG
files to a temporary folder -> decode them back on a thread pool (as a DataLoader's workers would), in batches of the
network's size, each resized to 299 px on the CPU with Pillow as clean-fid does (the official scripts use a modified
clean-fid) -> Inception features -> Fréchet distance by scipy.linalg.sqrtm as pytorch-fid and clean-fid compute it.
Both routes share one Inception network and one set of real statistics; the baseline pays the official route's
files, CPU resize and sqrtm (benchmarks/fid_speed.py times sqrtm alone). It is still flattered: N files instead of
the scripts' 50,000, parallel writes, files read back from the page cache. Goal: >= 10x.

No real data set is needed: a synthetic set of random uint8 images of the preset's shape, written to a temporary
folder, is the training data and the source of the real statistics (computed once, outside every timed region).
Timings do not depend on image content. Config flags (--lr-d, ..., or mixed precision / compile once the config has
them) reach train() and FIDEvaluator; the two baselines take only the models, optimizers and losses from the config.
Each timing is bracketed by torch.cuda.synchronize() on CUDA; the table shows medians over --repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import scipy.linalg
import torch
from PIL import Image
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable from a checkout without installing

from empirical.cli import OneLineParser, add_config_flags, config_overrides
from empirical.config import TrainConfig
from empirical.datasets import load_data
from empirical.errors import EmpiricalInputError
from empirical.evaluation import FIDEvaluator, reference_for
from empirical.features import FeatureExtractor
from empirical.fid import ReferenceStatistics
from empirical.fid import statistics as feature_statistics
from empirical.images import list_images
from empirical.losses import discriminator_loss, generator_loss
from empirical.optimizers import make_optimizer
from empirical.presets import get_preset
from empirical.train import build_models, resolve_device, train

DEFAULT_PRESET = "dcgan-cifar10"
# Fields this script sets itself (synthetic data, run length, device, n_eval); every other field is a pass-through flag.
OWN_FIELDS = ("data", "data_path", "data_limit", "image_size", "width", "batch_size", "max_steps", "eval_every",
              "n_eval", "target_fid", "device")  # fmt: skip
TRAIN_N_EVAL = 2  # samples of train()'s own FID evaluations: they fall outside the timed window, so keep them cheap
GOAL_TRAIN = 0.9  # ours / bare iterations per second
GOAL_FID = 10.0  # PNG-route seconds / in-memory seconds
BASELINE_TRAIN = "bare DCGAN-example loop"
BASELINE_FID = "PNG folder route"


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so that a wall-clock reading covers it (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------------------------------------------------------
# Configuration and synthetic data


def image_preset(name: str) -> TrainConfig:
    """The named preset, refused (one line) unless it trains on RGB images scored with Inception features."""
    preset = get_preset(name)  # an unknown name is a one-line error too
    if preset.features != "inception":
        raise EmpiricalInputError(
            f"preset {name!r} is not an RGB image preset (features {preset.features!r}); "
            "this benchmark needs one with Inception features"
        )
    return preset


@contextmanager
def cache_in(folder: Path) -> Iterator[None]:
    """Point $TTUR_CACHE_DIR at `folder` meanwhile: load_data caches a decoded copy of the (temporary) synthetic
    folder there, which must not pile up in the user's cache."""
    before = os.environ.get("TTUR_CACHE_DIR")
    os.environ["TTUR_CACHE_DIR"] = str(folder)
    try:
        yield
    finally:
        if before is None:
            del os.environ["TTUR_CACHE_DIR"]
        else:
            os.environ["TTUR_CACHE_DIR"] = before


@contextmanager
def cpu_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op CPU threads set to `threads` meanwhile (None: unchanged). With 2 threads on 2 cores that other
    jobs share, one descheduled thread stalls the other at every barrier: timings then vary 10x from run to run."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def write_synthetic_images(folder: Path, n: int, size: int, seed: int = 0) -> None:
    """n random uint8 RGB images of size x size as PNG files: the training set and the real statistics' source."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{i:06d}.png")


# ---------------------------------------------------------------------------------------------------------------
# (1) Training iterations per second


def bare_loop_seconds(config: TrainConfig, device: torch.device, warmup: int, steps: int, seed: int = 0) -> float:
    """Seconds for `steps` iterations of the DCGAN example's loop after `warmup` untimed ones: no bookkeeping at all.

    Same models, initialisation, optimizers, losses and minibatch sampling as train(), and, like the example (and
    train()), the G step reuses the D step's fake batch.
    """
    data = load_data(config, device)
    torch.manual_seed(seed)
    g, d = build_models(config, channels=data.shape[0])
    g, d = g.to(device), d.to(device)
    opt_d = make_optimizer(config.optimizer, d.parameters(), config.lr_d)
    opt_g = make_optimizer(config.optimizer, g.parameters(), config.lr_g)
    rng = torch.Generator(device=device).manual_seed(seed)
    b = config.batch_size
    start = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            synchronize(device)
            start = time.perf_counter()
        for critic_step in range(config.n_critic):
            real = data.sample(b, rng)
            z = torch.randn(b, config.z_dim, generator=rng, device=device)
            with torch.set_grad_enabled(critic_step == config.n_critic - 1):
                fake = g(z)
            loss_d, _, _ = discriminator_loss(config.loss, d, real, fake.detach(), rng, config.gp_weight)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
        loss_g = generator_loss(config.loss, d(fake))
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
    synchronize(device)
    return time.perf_counter() - start


def train_seconds(config: TrainConfig, device: torch.device, warmup: int, steps: int, seed: int = 0) -> float:
    """Seconds for `steps` iterations of train(), read at its progress callbacks after iterations warmup and
    warmup + steps: its set-up, its step-0 evaluation and its final evaluation (one iteration later) are outside."""
    marks: dict[int, float] = {}

    def progress(step: int, point: object) -> None:
        if step in (warmup, warmup + steps):
            synchronize(device)
            marks[step] = time.perf_counter()

    last = warmup + steps + 1
    run = config.with_(max_steps=last, eval_every=last, n_eval=TRAIN_N_EVAL, target_fid=1e-12)
    train(run, seed, progress=progress)
    return marks[warmup + steps] - marks[warmup]


def measure_training(config: TrainConfig, device: torch.device, warmup: int, steps: int, repeats: int) -> dict:
    """Both loops at the config's batch size, interleaved (alternating which goes first); medians of the repeats."""
    bare: list[float] = []
    ours: list[float] = []
    for repeat in range(repeats):
        runs = [(bare, bare_loop_seconds), (ours, train_seconds)]
        for seconds, loop in runs if repeat % 2 == 0 else runs[::-1]:
            seconds.append(loop(config, device, warmup, steps))
    bare_rate, ours_rate = steps / statistics.median(bare), steps / statistics.median(ours)
    return {
        "batch_size": config.batch_size,
        "bare_it_per_s": bare_rate,
        "ours_it_per_s": ours_rate,
        "ratio": ours_rate / bare_rate,
        "bare_seconds": bare,
        "ours_seconds": ours,
    }


# ---------------------------------------------------------------------------------------------------------------
# (2) One FID evaluation


def in_memory_fid(evaluator: FIDEvaluator, g: nn.Module, device: torch.device) -> tuple[float, float]:
    """(seconds, FID) of one call of our FIDEvaluator: the code path train() runs at every evaluation."""
    synchronize(device)
    start = time.perf_counter()
    fid = evaluator(g)
    synchronize(device)
    return time.perf_counter() - start, fid


CLEAN_FID_SIZE = 299  # clean-fid resizes every image to Inception's input on the CPU before the network


def _decode(path: Path) -> np.ndarray:
    """One PNG file as uint8 (3, 299, 299), as the official scripts' folder FID (a modified clean-fid) reads it:
    Pillow decode, RGB, then a bicubic resize to 299 on the CPU. (clean-fid resizes each channel in float mode,
    which costs more than this one uint8 resize: the baseline is, if anything, flattered.)"""
    with Image.open(path) as image:
        resized = image.convert("RGB").resize((CLEAN_FID_SIZE, CLEAN_FID_SIZE), Image.Resampling.BICUBIC)
        return np.asarray(resized).transpose(2, 0, 1)


def sqrtm_distance(reference: ReferenceStatistics, features: torch.Tensor) -> float:
    """The Fréchet distance as pytorch-fid and clean-fid compute it: scipy.linalg.sqrtm of Σ_r·Σ_g (a Schur
    decomposition of a non-symmetric 2048² matrix), with their ε·I retry when the product is singular."""
    generated = feature_statistics(features)
    mu1, sigma1, mu2, sigma2 = reference.stats.mu, reference.stats.sigma, generated.mu, generated.sigma
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Matrix is singular" when N < 2048; handled by the retry below
        covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
        if not np.isfinite(covmean).all():
            offset = np.eye(len(sigma1)) * 1e-6
            covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean.real))


def folder_features(folder: Path, extractor: FeatureExtractor) -> torch.Tensor:
    """Inception features of every image in the folder: files decoded on a thread pool, ahead of the network, and
    fed to it in batches of its own size (what a DataLoader with workers does in pytorch-fid)."""
    chunks, batch = [], []
    with ThreadPoolExecutor() as pool:
        for image in pool.map(_decode, list_images(folder)):  # in file order; the pool decodes ahead
            batch.append(image)
            if len(batch) == extractor.batch_size:
                chunks.append(extractor(torch.from_numpy(np.stack(batch))))
                batch = []
        if batch:
            chunks.append(extractor(torch.from_numpy(np.stack(batch))))
    return torch.cat(chunks)


def png_route_fid(
    evaluator: FIDEvaluator, g: nn.Module, device: torch.device, folder: Path, distance: bool = True
) -> dict[str, float]:
    """Seconds per stage, total and FID of the official scripts' route: PNG files, CPU resize to 299, our Inception
    network and real statistics, pytorch-fid's sqrtm distance. The samples are FIDEvaluator's (same noise, same
    chunks), rounded to 8 bits as PNG files hold them."""
    synchronize(device)
    start = time.perf_counter()
    with torch.no_grad():
        samples = torch.cat([g(z) for z in evaluator.z.split(4096)])
        pixels = ((samples + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
    array = pixels.permute(0, 2, 3, 1).cpu().numpy()  # NHWC for Pillow; .cpu() waits for the GPU
    generated = time.perf_counter()
    with ThreadPoolExecutor() as pool:
        list(pool.map(lambda i: Image.fromarray(array[i]).save(folder / f"{i:06d}.png"), range(len(array))))
    written = time.perf_counter()
    features = folder_features(folder, evaluator.extractor)
    synchronize(device)
    extracted = time.perf_counter()
    fid = sqrtm_distance(evaluator.reference, features) if distance else float("nan")  # warm-up: no sqrtm to warm
    done = time.perf_counter()
    return {
        "generate": generated - start,
        "write_png": written - generated,
        "read_and_features": extracted - written,
        "distance": done - extracted,
        "total": done - start,
        "fid": fid,
    }


def measure_fid(config: TrainConfig, device: torch.device, n: int, repeats: int, scratch: Path) -> dict:
    """Both routes on the same untrained generator, after one warm-up of each on up to one network batch."""
    evaluator = FIDEvaluator(config.with_(n_eval=n), device, seed=1)
    warm = FIDEvaluator(config.with_(n_eval=min(n, max(2, evaluator.extractor.batch_size))), device, seed=2)
    torch.manual_seed(0)
    g = build_models(config, channels=3)[0].to(device)

    def png_route(on: FIDEvaluator, distance: bool = True) -> dict[str, float]:
        folder = Path(tempfile.mkdtemp(prefix="png-route-", dir=scratch))
        try:
            return png_route_fid(on, g, device, folder, distance)
        finally:  # deleting the files is not part of the route's time
            shutil.rmtree(folder)

    in_memory_fid(warm, g, device)
    png_route(warm, distance=False)
    ours: list[float] = []
    png: list[dict[str, float]] = []
    fid_ours = float("nan")
    for repeat in range(repeats):
        for route in ("ours", "png") if repeat % 2 == 0 else ("png", "ours"):
            if route == "ours":
                seconds, fid_ours = in_memory_fid(evaluator, g, device)
                ours.append(seconds)
            else:
                png.append(png_route(evaluator))
    stages = {name: statistics.median(run[name] for run in png) for name in png[0] if name != "fid"}
    return {
        "n": n,
        "ours_seconds": statistics.median(ours),
        "png_seconds": stages["total"],
        "ratio": stages["total"] / statistics.median(ours),
        "png_stage_seconds": stages,
        "ours_all_seconds": ours,
        "png_all_seconds": [run["total"] for run in png],
        "fid_ours": fid_ours,
        "fid_png": png[-1]["fid"],
    }


# ---------------------------------------------------------------------------------------------------------------
# Command line


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python benchmarks/preset_speed.py", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default=DEFAULT_PRESET, help=f"an image preset (default {DEFAULT_PRESET})")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    parser.add_argument("--batch-sizes", default="64,256", help="comma-separated (default 64,256)")
    parser.add_argument("--steps", type=int, default=200, help="timed training iterations per run (default 200)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed iterations before them (default 20)")
    parser.add_argument("--n-fid", type=int, default=10_000, help="generated samples per FID (default 10000)")
    parser.add_argument("--n-real", type=int, default=1000, help="synthetic images: training set and real statistics")
    parser.add_argument("--image-size", type=int, default=None, help="default: the preset's")
    parser.add_argument("--width", type=int, default=None, help="DCGAN base channels (default: the preset's)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each measurement (median)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 is steadier on a shared CPU)")
    parser.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    add_config_flags(parser, exclude=OWN_FIELDS)
    return parser


def _batch_sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise EmpiricalInputError(f"--batch-sizes must be comma-separated integers, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise EmpiricalInputError(f"--batch-sizes must be positive integers, got {text!r}")
    return sizes


def _check_counts(args: argparse.Namespace) -> None:
    for name, low in (("steps", 1), ("warmup", 1), ("n_fid", 2), ("n_real", 2), ("repeats", 1), ("threads", 1)):
        if getattr(args, name) is not None and getattr(args, name) < low:
            raise EmpiricalInputError(f"--{name.replace('_', '-')} must be at least {low}")


def _table(results: dict) -> list[str]:
    """One row per measurement: the named baseline, ours, the ratio and the goal."""
    rows = [("measurement", "baseline", "", "ours", "", "ratio", "goal")]
    for t in results["training"]:
        rows.append((
            f"training, b = {t['batch_size']}", BASELINE_TRAIN, f"{t['bare_it_per_s']:.2f} it/s",
            "train()", f"{t['ours_it_per_s']:.2f} it/s", f"{t['ratio']:.3f} (ours/bare it/s)",
            f">= {GOAL_TRAIN} {'met' if t['ratio'] >= GOAL_TRAIN else 'MISSED'}",
        ))  # fmt: skip
    f = results["fid"]
    rows.append((
        f"one FID, N = {f['n']}", BASELINE_FID, f"{f['png_seconds']:.3f} s", "FIDEvaluator",
        f"{f['ours_seconds']:.3f} s", f"{f['ratio']:.2f}x faster (PNG s/ours s)",
        f">= {GOAL_FID:g}x {'met' if f['ratio'] >= GOAL_FID else 'MISSED'}",
    ))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def _progress(message: str) -> None:
    """A line on stderr as each measurement starts (a GPU run at N = 10,000 takes minutes); stdout holds the table."""
    print(f"preset_speed: {message}", file=sys.stderr, flush=True)


def run_benchmark(args: argparse.Namespace) -> dict:
    """Write the synthetic set, compute the real statistics once, then measure (1) and (2): everything, as a dict."""
    _check_counts(args)
    batch_sizes = _batch_sizes(args.batch_sizes)
    device = resolve_device(args.device)
    preset = image_preset(args.preset)
    size = args.image_size or preset.image_size
    overrides = {k: v for k, v in config_overrides(args).items() if k not in OWN_FIELDS}  # ours share dest names
    with (
        tempfile.TemporaryDirectory(prefix="preset-speed-") as scratch,
        cache_in(Path(scratch, "cache")),
        cpu_threads(args.threads),
    ):
        data_dir = Path(scratch, "data")
        data_dir.mkdir()
        write_synthetic_images(data_dir, args.n_real, size)
        own = {
            "data_path": str(data_dir),
            "image_size": size,
            "width": args.width or preset.width,
            "device": str(device),
        }
        config = preset.with_(data="folder", data_limit=None, **own, **overrides)
        threads = torch.get_num_threads()
        start = time.perf_counter()
        reference_for(config, device)  # the real statistics, once, shared by train() and both FID routes (cached)
        reference_seconds = time.perf_counter() - start
        training = []
        for b in batch_sizes:
            _progress(f"training at b = {b}: {args.repeats} x (bare loop, train())")
            training.append(measure_training(config.with_(batch_size=b), device, args.warmup, args.steps, args.repeats))
        _progress(f"FID at N = {args.n_fid}: a warm-up, then {args.repeats} x (in memory, PNG folder)")
        fid = measure_fid(config, device, args.n_fid, args.repeats, Path(scratch))
    return {
        "preset": args.preset,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "torch_threads": threads,
        "cpu_count": os.cpu_count(),
        "load_average": " ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a",
        "config": {**config.to_dict(), "data_path": "(a temporary folder of synthetic images)"},
        "config_flags": overrides,
        "data": f"{args.n_real} synthetic random uint8 images of 3x{size}x{size} (timings do not depend on content)",
        "real_statistics_seconds": reference_seconds,
        "warmup_steps": args.warmup,
        "steps": args.steps,
        "repeats": args.repeats,
        "baselines": {
            "training": f"{BASELINE_TRAIN}: same models, optimizers, losses and minibatches, no bookkeeping",
            "fid": f"{BASELINE_FID}: write N PNGs, decode + resize to 299 on the CPU, same Inception and real "
                   "statistics, scipy sqrtm distance",
        },
        "goals": {"training_ratio_at_least": GOAL_TRAIN, "fid_ratio_at_least": GOAL_FID},
        "training": training,
        "fid": fid,
    }


def print_report(results: dict) -> None:
    """The setup in a few lines, the table, then where the PNG route's time goes."""
    c, fid = results["config"], results["fid"]
    print(
        f"preset {results['preset']}: DCGAN {c['image_size']} px, width {c['width']}, z_dim {c['z_dim']}, "
        f"{c['loss']}, {c['optimizer']} lr_d {c['lr_d']:g} / lr_g {c['lr_g']:g}, n_critic {c['n_critic']}"
    )
    print(
        f"device {results['device']} ({results['device_name']}), torch {results['torch']}, "
        f"{results['torch_threads']} threads, {results['cpu_count']} CPUs, load average {results['load_average']}"
    )
    print(f"config flags passed to train() and FIDEvaluator: {results['config_flags'] or 'none'}")
    print(
        f"data: {results['data']}; real statistics computed once in {results['real_statistics_seconds']:.1f} s, "
        "outside every timing"
    )
    print(
        f"training: {results['warmup_steps']} warm-up + {results['steps']} timed iterations per run; FID: one warm-up "
        f"of each route; medians of {results['repeats']} repeats\n"
    )
    print("\n".join(_table(results)))
    s = fid["png_stage_seconds"]
    print(
        f"\n{BASELINE_FID} stages: generate {s['generate']:.3f} s, write PNGs {s['write_png']:.3f} s, "
        f"decode + resize + Inception {s['read_and_features']:.3f} s, sqrtm distance {s['distance']:.3f} s"
    )
    print(f"FID of the untrained generator: {fid['fid_ours']:.3f} in memory, {fid['fid_png']:.3f} via 8-bit PNGs and "
          "the CPU resize (its other resize filter changes the value)")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        results = run_benchmark(args)
    except EmpiricalInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print_report(results)
    if args.json:
        target = Path(args.json)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(results, indent=1))
        except OSError as error:
            print(f"error: cannot write {target}: {error.strerror or error}", file=sys.stderr)
            return 2
        print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
