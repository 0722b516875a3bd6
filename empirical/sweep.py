"""Batch-size sweeps: every (batch size, seed, learning-rate scale, optimizer) cell, one training run each.

    python -m empirical.sweep --preset ring8 --out runs/ring8 [--batch-sizes 4,8,...,512] [--seeds 0,1,2]
                              [--lr-scale 0.25,0.5,1,2,4] [--optimizers adam] [--targets 8,4,2] [--workers 2]
                              [--export-csv] [--tensorboard DIR] [--ensemble auto|off|R]
                              [--backend ray [--address auto] [--ray-cpus 1] [--ray-gpus 0.25] ...]
    python -m empirical.sweep --entry my_package.gan:train [--set lr=2e-4] --out runs/mine ...

Each cell runs in a worker process with one thread, so a cell's result does not depend on --workers; the seeds of one
batch size of a benchmark that trains seeds as one batched computation (lqgan) run together in one worker, and with
--ensemble auto (the default; or R) so do those of MLP configs, as one vectorised seed ensemble whose runs are
bitwise what they would be alone (empirical/ensemble.py); --ensemble off trains one run per worker task. The parent
alone writes to the folder's SQLite store (empirical/store.py) as runs finish; running the same command again
skips finished cells, so a killed sweep resumes where it stopped. Then: python -m empirical.report OUT.
--targets gives several FID targets from one sweep: each run stops by the tightest, and the report reads the K of
every target from the same FID histories (empirical/stopping.py steps_to), at no extra training.
--backend ray runs the same bundles as Ray tasks instead, on this machine or a cluster (empirical/ray_backend.py,
docs/cluster.md); the parent still alone writes the store. --entry sweeps a user's own training function that yields
(step, FID) instead of a preset's GAN (empirical/entry.py); --tensorboard writes live logs (empirical/live_logging.py).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import torch
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from empirical import benchmarks, ensemble
from empirical.cli import OneLineParser, add_config_flags, config_overrides, fail
from empirical.config import TrainConfig
from empirical.datasets import load_data
from empirical.entry import check_signature, entry_params, load_entry, parse_set, train_entry
from empirical.errors import EmpiricalInputError
from empirical.live_logging import RunLog, check_tensorboardx
from empirical.optimizers import ELEMENTWISE
from empirical.presets import PRESETS, default_batch_sizes, default_seeds, get_preset
from empirical.reference_point import is_cached, reference_point
from empirical.store import Cell, open_store
from empirical.train import RunResult, resolve_device, train

PROG = "python -m empirical.sweep"
Reference = dict[str, torch.Tensor]  # θ_ref per player, as empirical.reference_point makes it
# --ensemble: "auto" (the default: MLP seed ensembles, empirical/ensemble.py, wherever the config is supported, and
# lqgan's batched seeds), "off" (lqgan's batched seeds only), or a positive int R (as auto, at most R seeds per bundle)
Ensemble = str | int


def grid(
    batch_sizes: Iterable[int],
    seeds: Iterable[int],
    lr_scales: Iterable[float] = (1.0,),
    optimizers: Iterable[str] = ("adam",),
) -> list[Cell]:
    """Every cell of the grid, smallest batches first: they need the most steps and evaluations, so they are the
    longest runs, and starting the longest first keeps workers from idling at the end (LPT scheduling)."""
    cells = {Cell(b, s, float(x), o) for b in batch_sizes for s in seeds for x in lr_scales for o in optimizers}
    return sorted(cells, key=lambda c: (c.batch_size, c.optimizer, c.lr_scale, c.seed))


def check_cells(base: TrainConfig, cells: Sequence[Cell]) -> None:
    """Validate every cell's config before any run starts (a bad optimizer name fails now, not in a worker)."""
    for cell in cells:
        cell.config(base)


def limit_threads(threads: int) -> None:
    """torch and the BLAS under numpy/scipy (FID's eigendecompositions) on `threads` threads each: workers that each
    spawn a thread per core oversubscribe the machine (a 2048-d FID took 15x longer under load)."""
    torch.set_num_threads(threads)
    threadpool_limits(threads)


def _init_worker() -> None:
    limit_threads(1)  # one core per run; also makes a run's floating-point result independent of --workers


def run_cell(base: TrainConfig, cell: Cell, reference: Reference | None = None,
             log_dir: str | None = None) -> RunResult:
    """One training run (in a worker process): train(), or the user's function (--entry); `reference`: θ_ref of the
    VI gap when the config measures; `log_dir`: live TensorBoard logs (empirical/live_logging.py)."""
    config = cell.config(base)
    log = None if log_dir is None else RunLog(log_dir, cell)
    try:
        if config.entry is not None:
            return train_entry(config, cell.seed, on_eval=log)
        return train(config, cell.seed, reference=reference,
                     observe=None if log is None else lambda checkpoint: log(checkpoint.point))
    finally:
        if log is not None:
            log.close()


def parse_ensemble(text: str) -> Ensemble:
    """--ensemble: auto, off, or a positive number of seeds per ensemble."""
    if text in ("auto", "off"):
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise EmpiricalInputError(f"--ensemble must be auto, off or a positive integer, got {text!r}")
    return value


def _batched_trainer(config: TrainConfig, ensemble_mode: Ensemble = "off"
                     ) -> Callable[[TrainConfig, Sequence[int]], list[RunResult]] | None:
    """The trainer of this config's seeds together, else None: a registered benchmark's own (lqgan), else, unless
    `ensemble_mode` is off, a seed ensemble (empirical/ensemble.py) where it supports the config; never for a
    user's function."""
    if config.entry is not None:
        return None
    if benchmarks.is_registered(config.data):
        unit = benchmarks.get_benchmark(config.data)
        if unit.train_many is not None and config.optimizer in ELEMENTWISE:
            return unit.train_many
    if ensemble_mode != "off" and ensemble.unsupported(config) is None:
        return ensemble.train_many
    return None


def bundles(base: TrainConfig, cells: Sequence[Cell], ensemble_mode: Ensemble = "off",
            workers: int = 1) -> list[list[Cell]]:
    """The cells grouped into the units a worker trains: the seeds of one (batch size, lr scale, optimizer) together
    where they can be trained as one batched computation (lqgan; seed ensembles unless `ensemble_mode` is off), at
    most `ensemble_mode` seeds each when it is a number; one cell each otherwise. Seed ensembles come first, largest
    batch size first; the rest keep their order.

    With "auto" and fewer groups than `workers`, each seed ensemble is split into near-equal parts so that no worker
    idles: a run's result does not depend on its ensemble (empirical/ensemble.py), so the split is free."""
    groups: dict[tuple, list[Cell]] = {}
    splittable: set[tuple] = set()
    for cell in cells:
        try:
            trainer = _batched_trainer(cell.config(base), ensemble_mode)
        except EmpiricalInputError:  # a cell sweep() would refuse: alone, so its worker reports the error for it alone
            trainer = None
        key = (cell.batch_size, cell.lr_scale, cell.optimizer) if trainer is not None else (cell,)
        groups.setdefault(key, []).append(cell)
        if trainer is ensemble.train_many:
            splittable.add(key)
    parts = math.ceil(workers / len(groups)) if ensemble_mode == "auto" and splittable else 1
    ensembles, others = [], []
    for key, group in groups.items():
        size = (ensemble_mode if isinstance(ensemble_mode, int) else
                math.ceil(len(group) / parts) if key in splittable else len(group))
        (ensembles if key in splittable else others).extend(group[i:i + size] for i in range(0, len(group), size))
    # Longest first (LPT): a seed ensemble's step costs about R·b once compute-bound, while K(b) flattens above b*,
    # so the largest batch sizes are the longest ensembles (gauss-mlp's demo: 26.7 s at b = 512, 4.6 s at b = 4);
    # single runs and lqgan's batches keep the grid's order (smallest b first).
    return sorted(ensembles, key=lambda bundle: -bundle[0].batch_size) + others


def run_bundle(base: TrainConfig, bundle: Sequence[Cell], reference: Reference | None = None,
               ensemble_mode: Ensemble = "off", log_dir: str | None = None) -> list[RunResult]:
    """The runs of a bundle (in a worker process): batched when it holds several seeds of a batched benchmark
    (whose θ_ref is its exact equilibrium, so it needs no `reference`) or of a seed ensemble (which refuses
    measure_batch, so it needs none either)."""
    config = bundle[0].config(base)
    trainer = _batched_trainer(config, ensemble_mode)
    if trainer is None or len(bundle) == 1:
        return [run_cell(base, cell, reference, log_dir) for cell in bundle]
    seeds = [cell.seed for cell in bundle]
    if log_dir is None:
        return trainer(config, seeds)
    logs = {cell.seed: RunLog(log_dir, cell) for cell in bundle}
    try:
        if trainer is ensemble.train_many:
            return trainer(config, seeds, on_eval=lambda seed, point: logs[seed](point))
        results = trainer(config, seeds)  # lqgan's batched trainer has no hook: its histories once it is done
        for result in results:
            for point in result.history:
                logs[result.seed](point, flush=False)
        return results
    finally:
        for log in logs.values():
            log.close()


@dataclass(frozen=True)
class Outcome:
    cell: Cell
    result: RunResult | None
    error: str | None = None


# execute, or ray_backend.execute_ray: (base, cells, θ_ref or None) -> outcomes as they finish
Executor = Callable[[TrainConfig, Sequence[Cell], Reference | None], Iterator[Outcome]]


def execute(
    base: TrainConfig, cells: Sequence[Cell], workers: int, reference: Reference | None = None,
    ensemble_mode: Ensemble = "auto", log_dir: str | None = None,
) -> Iterator[Outcome]:
    """Run the cells on `workers` processes and yield each outcome as it finishes (in completion order).

    Spawned workers: a forked child would inherit the parent's torch thread pools, which is unsafe. An exception
    inside a run (not a divergence: train() returns those) becomes an Outcome with an error, and the sweep goes on.
    """
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker) as pool:
        pending: dict[Future, list[Cell]] = {
            pool.submit(run_bundle, base, b, reference, ensemble_mode, log_dir): b
            for b in bundles(base, cells, ensemble_mode, workers)}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    bundle = pending.pop(future)
                    try:
                        results = future.result()
                    except Exception as error:  # reported per cell; the sweep continues
                        for cell in bundle:
                            yield Outcome(cell, None, f"{type(error).__name__}: {error}")
                    else:
                        yield from (Outcome(cell, r) for cell, r in zip(bundle, results, strict=True))
        finally:
            for future in pending:
                future.cancel()


def sweep(
    base: TrainConfig,
    cells: Sequence[Cell],
    out: str | Path,
    *,
    preset: str = "custom",
    targets: Sequence[float] | None = None,
    workers: int = 1,
    executor: Executor | None = None,
    on_start: Callable[[int], None] | None = None,
    on_outcome: Callable[[Outcome, bool], None] | None = None,
    ensemble_mode: Ensemble = "auto",
    log_dir: str | None = None,
) -> tuple[int, list[Outcome]]:
    """Run the cells not yet in `out`'s store; return (runs added, failed outcomes).

    `targets`: several FID targets for the folder (the tightest must be base.target_fid, by which the runs stop;
    None: that one alone), kept in the store (empirical/store.py open_store) for the report.

    `executor(base, todo, reference)` runs them (default: `execute` on `workers` processes, bundling seeds per
    `ensemble_mode`, with live TensorBoard logs in `log_dir` when given); only this process writes the store, one run
    at a time whatever the bundles.
    For progress reporting, `on_start(n_already_done)` is called once, and `on_outcome(outcome, added)` after
    each run is stored (or failed). With base.measure_batch > 0, θ_ref (empirical/reference_point.py) is made
    here, once, before any run starts, cached in `out`, and handed to the executor's workers.
    """
    check_cells(base, cells)
    with open_store(out, base, preset, targets) as store:
        finished = store.finished()
        todo = [c for c in cells if c not in finished]
        reference = reference_point(base, Path(out)) if todo and base.measure_batch > 0 else None
        run = executor or (lambda base, todo, reference: execute(base, todo, workers, reference, ensemble_mode,
                                                                 log_dir))
        if on_start is not None:
            on_start(len(cells) - len(todo))
        added, failed = 0, []
        for outcome in run(base, todo, reference) if todo else ():
            new = False
            if outcome.result is not None:
                new = store.add(outcome.cell, outcome.result)
                added += new
            else:
                failed.append(outcome)
            if on_outcome is not None:
                on_outcome(outcome, new)
    return added, failed


# ---------------------------------------------------------------------------------------------------------------
# CLI


def _list(kind: Callable[[str], object], name: str) -> Callable[[str], list]:
    def parse(text: str) -> list:
        try:
            values = [kind(x) for x in text.split(",") if x.strip()]
        except ValueError:
            raise EmpiricalInputError(f"--{name} must be a comma-separated list, got {text!r}") from None
        if not values:
            raise EmpiricalInputError(f"--{name} is empty")
        return values

    return parse


def _parser() -> OneLineParser:
    parser = OneLineParser(prog=PROG, description="Run a TTUR GAN batch-size sweep into a resumable SQLite store.")
    parser.add_argument("--preset", default="ring8", help=f"one of {', '.join(PRESETS)} (default ring8)")
    parser.add_argument("--out", required=True, help="output folder (its sweep.db is created or resumed)")
    parser.add_argument("--batch-sizes", help="comma-separated (default: the preset's grid: 4..512 for ring8, "
                                              "grid25, digits; 4..1024 for the paper presets; 1..1024 for lqgan)")
    parser.add_argument("--seeds", help="comma-separated (default: the preset's: 0..7 for lqgan, 0..4 for "
                                         "gauss-mlp, 0,1,2 otherwise)")
    parser.add_argument("--lr-scale", default="1", help="multipliers of both α_D and α_G, e.g. 0.25,0.5,1,2,4")
    parser.add_argument("--optimizers", default=None, help="comma-separated (default: the preset's)")
    parser.add_argument("--targets", help="several FID targets, comma-separated, e.g. 4,2,1: runs stop by the "
                                          "tightest and the report gives b* for each (instead of --target-fid)")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)),
                        help="processes (default: cores); with --backend ray, the CPUs of a local Ray instance")
    parser.add_argument("--export-csv", action="store_true", help="write runs.csv and history.csv into --out")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--ensemble", default="auto",
                        help="auto (default): train the seeds of one (batch size, lr scale, optimizer) as one "
                             "vectorised model where empirical/ensemble.py supports the config (MLP on ring8, grid25, "
                             "gauss-mlp), bitwise the runs' results alone; R: at most R seeds per ensemble; off: one "
                             "run per cell (lqgan batches either way)")
    parser.add_argument("--entry", metavar="MODULE:FUNCTION",
                        help="sweep your own training function instead of a preset's GAN: it is called as "
                             "FUNCTION(batch_size=b, seed=s, **params) and yields (step, fid) (docs/your-own-gan.md)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="entry_set",
                        help="with --entry: a keyword argument of the function (repeat; JSON values where they parse)")
    parser.add_argument("--tensorboard", metavar="DIR",
                        help="live TensorBoard logs, one run per cell, written by the workers as they train "
                             "(needs the [tensorboard] extra; tensorboard --logdir DIR)")
    parser.add_argument("--backend", choices=("local", "ray"), default="local",
                        help="local: a process pool (default); ray: Ray tasks, local or on a cluster (docs/cluster.md)")
    parser.add_argument("--address", help="ray: auto (the running cluster), host:port or ray://host:port "
                                           "(default: start a local instance of --workers CPUs)")
    parser.add_argument("--ray-cpus", type=float, help="ray: CPUs per run, also its torch threads (default 1)")
    parser.add_argument("--ray-gpus", type=float, help="ray: GPUs per run, fractions allowed (default: 1 if --device "
                                                       "is not cpu and the cluster has GPUs, else 0)")
    parser.add_argument("--ray-max-retries", type=int, help="ray: reruns of a run whose worker died (default 3)")
    parser.add_argument("--ray-runtime-env", metavar="JSON",
                        help='ray: a runtime_env object, e.g. \'{"working_dir": "."}\' or \'{"py_modules": [...]}\'')
    add_config_flags(parser, exclude=("batch_size", "optimizer"))
    return parser


def _positive(values: list, name: str) -> list:
    if any(not v > 0 for v in values):  # `not >`: NaN is refused too
        raise EmpiricalInputError(f"--{name} must be positive, got {values}")
    return values


def parse_targets(text: str) -> list[float]:
    """--targets: distinct positive finite FID targets, loosest first (the last, the tightest, stops the runs)."""
    values = _positive(_list(float, "targets")(text), "targets")
    if not all(math.isfinite(v) for v in values):
        raise EmpiricalInputError(f"--targets must be finite, got {values}")
    return sorted(set(values), reverse=True)


RAY_FLAGS = ("address", "ray_cpus", "ray_gpus", "ray_max_retries", "ray_runtime_env")


def _ray_executor(args: argparse.Namespace) -> Executor:
    """The Ray backend per the flags (Ray and the address are checked now, before anything is written)."""
    from empirical.ray_backend import RayOptions, ray_executor

    try:
        runtime_env = None if args.ray_runtime_env is None else json.loads(args.ray_runtime_env)
    except json.JSONDecodeError as error:
        raise EmpiricalInputError(f"--ray-runtime-env is not valid JSON ({error})") from None
    if runtime_env is not None and not isinstance(runtime_env, dict):
        raise EmpiricalInputError(f"--ray-runtime-env must be a JSON object, got {args.ray_runtime_env!r}")
    given = {"cpus": args.ray_cpus, "gpus": args.ray_gpus, "max_retries": args.ray_max_retries}
    return ray_executor(RayOptions(address=args.address, runtime_env=runtime_env, local_cpus=args.workers,
                                   **{k: v for k, v in given.items() if v is not None}), args.ensemble,
                        args.tensorboard)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    start = time.perf_counter()
    try:
        overrides = config_overrides(args)
        targets = None
        if args.targets is not None:
            if "target_fid" in overrides:
                raise EmpiricalInputError("give --targets or --target-fid, not both")
            targets = parse_targets(args.targets)
            overrides["target_fid"] = targets[-1]  # the runs stop by the tightest
        if args.entry is None and args.entry_set:
            raise EmpiricalInputError("--set gives parameters of an --entry function; without --entry use the config "
                                      "flags")
        if args.entry is not None:
            if args.optimizers or args.lr_scale != "1":
                raise EmpiricalInputError("--entry sweeps batch sizes and seeds; give the function's optimizer and "
                                          "learning rates with --set")
            if overrides.get("measure_batch"):
                raise EmpiricalInputError("--measure-batch measures the toolkit's own models; an --entry function's "
                                          "noise is measured in its loop with empirical.monitor")
            # the preset supplies the stopping settings only: its own measurements do not apply
            overrides.update(entry=args.entry, entry_params=parse_set(args.entry_set), measure_batch=0)
        base = get_preset(args.preset).with_(**overrides)
        if base.entry is not None:
            check_signature(load_entry(base.entry), base.entry, entry_params(base))
        # None: the flag was not given (the preset's grid); an empty string is a given, empty list: refused
        given = args.batch_sizes if args.batch_sizes is not None else ",".join(
            map(str, default_batch_sizes(args.preset)))
        batch_sizes = _positive(_list(int, "batch-sizes")(given), "batch-sizes")
        seeds = _list(int, "seeds")(args.seeds if args.seeds is not None else ",".join(
            map(str, default_seeds(args.preset))))
        lr_scales = _positive(_list(float, "lr-scale")(args.lr_scale), "lr-scale")
        optimizers = _list(str, "optimizers")(args.optimizers) if args.optimizers else [base.optimizer]
        if args.workers < 1:
            raise EmpiricalInputError(f"--workers must be at least 1, got {args.workers}")
        args.ensemble = parse_ensemble(args.ensemble)
        if args.tensorboard is not None:
            check_tensorboardx()
        if args.backend == "local" and (flags := [n for n in RAY_FLAGS if getattr(args, n) is not None]):
            raise EmpiricalInputError(f"--{flags[0].replace('_', '-')} needs --backend ray")
        cells = grid(batch_sizes, seeds, lr_scales, optimizers)
        check_cells(base, cells)
        executor = _ray_executor(args) if args.backend == "ray" else None
        if base.entry is None and (args.backend == "local" or args.address is None):  # a cluster's nodes need them
            resolve_device(base.device)  # a device this machine lacks, or a missing dataset, fails here in one line,
            load_data(base, torch.device("cpu"))  # before any worker starts
        if base.measure_batch > 0 and not is_cached(base, Path(args.out)):
            print(f"{PROG}: training the VI gap's reference point θ_ref first (one run of {base.max_steps} steps, "
                  f"cached in {args.out})", file=sys.stderr)
        bar = None if args.no_progress else tqdm(total=len(cells), desc="runs", unit="run")

        def progress(outcome: Outcome, added: bool) -> None:
            r, c = outcome.result, outcome.cell
            note = (f"b={c.batch_size} seed={c.seed}: " + ("error" if r is None else
                    f"K={r.steps_to_target}" if r.status == "reached" else r.status))
            if bar is not None:
                bar.update(1)
                running = f"running {min(args.workers, bar.total - bar.n)}, " if args.backend == "local" else ""
                bar.set_postfix_str(f"{running}last {note}")
            if r is None:
                tqdm.write(f"{PROG}: run failed, sweep goes on: {note}: {outcome.error}", file=sys.stderr)

        label = args.preset if base.entry is None else base.entry  # the store's and the report's name for it
        added, failed = sweep(base, cells, args.out, preset=label, targets=targets, workers=args.workers,
                              executor=executor, ensemble_mode=args.ensemble, log_dir=args.tensorboard,
                              on_start=None if bar is None else bar.update, on_outcome=progress)
        if bar is not None:
            bar.close()
        if args.export_csv:
            from empirical.store import read_store

            with read_store(args.out) as store:
                paths = store.export_csv(Path(args.out))
            print("CSV: " + ", ".join(map(str, paths)))
    except EmpiricalInputError as error:
        return fail(PROG, error)
    except (sqlite3.Error, OSError) as error:  # a run's transaction rolls back whole: finished runs stay saved
        return fail(PROG, f"cannot write to {args.out}: {error}; finished runs are saved, rerun to resume")
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted; finished runs are saved in {args.out}; run the same command to resume",
              file=sys.stderr)
        return 130
    print(f"{args.out}: {added} new runs, {len(cells) - len(failed)} of {len(cells)} cells done "
          f"in {time.perf_counter() - start:.0f} s; report: python -m empirical.report {args.out}")
    if failed:
        return fail(PROG, f"{len(failed)} runs failed (see above); run the same command to retry them", 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
