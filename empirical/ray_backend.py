"""The sweep's Ray backend: the same cells as tasks on a Ray instance, local or a cluster (docs/cluster.md).

    python -m empirical.sweep --preset ring8 --out runs/ring8 --backend ray --address auto

Only the driver (the sweep process) writes the store, as with the process pool, so resume, dedup and the kill -9
guarantee are unchanged. Ray reruns a task whose worker died (SIGKILL, OOM) up to max_retries times; an exception
inside a run is never retried: it becomes an error Outcome and the sweep goes on. Ray is imported only when used.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from empirical.config import TrainConfig
from empirical.errors import EmpiricalInputError
from empirical.store import Cell
from empirical.sweep import Ensemble, Executor, Outcome, Reference, bundles, limit_threads, run_bundle
from empirical.train import RunResult

NEEDS_RAY = "the ray backend needs Ray: pip install 'ttur-critical-batch[ray]'"


@dataclass(frozen=True)
class RayOptions:
    """Where the tasks run and what each one asks Ray for.

    address: None starts a local instance of `local_cpus` CPUs (None: all cores), "auto" joins the running cluster,
    "host:port" the cluster with that head node, "ray://host:port" goes through Ray Client. gpus None: 1 when the
    config's device is not cpu and the cluster has GPUs, else 0. max_retries counts reruns after a worker died.
    runtime_env: Ray's, e.g. {"working_dir": "."}. cpus may be fractional; torch gets max(1, int(cpus)) threads.
    """

    address: str | None = None
    cpus: float = 1
    gpus: float | None = None
    max_retries: int = 3
    runtime_env: dict[str, Any] | None = None
    local_cpus: int | None = None

    def __post_init__(self) -> None:
        if not self.cpus > 0:
            raise EmpiricalInputError(f"--ray-cpus must be positive, got {self.cpus}")
        if self.gpus is not None and not self.gpus >= 0:
            raise EmpiricalInputError(f"--ray-gpus must be 0 or more, got {self.gpus}")
        if self.max_retries < 0:
            raise EmpiricalInputError(f"--ray-max-retries must be 0 or more, got {self.max_retries}")


def run_bundle_task(base: TrainConfig, bundle: Sequence[Cell], threads: int, reference: Reference | None = None,
                    ensemble_mode: Ensemble = "auto", log_dir: str | None = None) -> list[RunResult]:
    """One bundle (a cell, or the seeds of one trained together) in a Ray worker, with torch on the task's CPUs (1
    thread gives the process pool's exact results); `reference`: the sweep's θ_ref of the VI gap (an object-store
    reference, resolved by Ray before the call)."""
    limit_threads(threads)
    return run_bundle(base, bundle, reference, ensemble_mode, log_dir)


def import_ray() -> ModuleType:
    """Ray, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise EmpiricalInputError(NEEDS_RAY) from None
    return ray


def check_address(address: str | None) -> None:
    """Fail in one line when nothing listens at host:port: ray.init would retry for minutes, then exit."""
    given = "--address"
    if address == "auto" and os.environ.get("RAY_ADDRESS"):  # else Ray looks for an instance on this machine
        address, given = os.environ["RAY_ADDRESS"], "$RAY_ADDRESS"
    if address is None or address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit():
        raise EmpiricalInputError(f"{given} must be auto, host:port or ray://host:port, got {address!r}")
    try:
        with socket.create_connection((host, int(port)), timeout=10):
            pass
    except OSError as error:
        raise EmpiricalInputError(f"no Ray cluster at {given} {address} ({error}); start one with "
                                  "`ray start --head` or check the address") from None


def ray_executor(options: RayOptions, ensemble_mode: Ensemble = "auto", log_dir: str | None = None) -> Executor:
    """`execute_ray` bound to `options`, for sweep(executor=...); checks Ray and the address before any write.
    `log_dir`: live TensorBoard logs, written by the tasks (on a cluster, a path every node shares)."""
    ray = import_ray()
    if not ray.is_initialized():
        check_address(options.address)
    return lambda base, cells, reference=None: execute_ray(base, cells, options, reference, ensemble_mode, log_dir)


def _init(ray: ModuleType, options: RayOptions) -> None:
    """Start a local instance or connect to `options.address`; what Ray raises becomes one line."""
    check_address(options.address)
    kwargs: dict[str, Any] = {"runtime_env": options.runtime_env} if options.runtime_env else {}
    if options.address is None:  # "local": a new instance even when RAY_ADDRESS is set
        kwargs.update(address="local", num_cpus=options.local_cpus, include_dashboard=False)
    else:
        kwargs["address"] = options.address
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError, TypeError, TimeoutError, ray.exceptions.RayError) as error:
        if options.address is None:
            raise EmpiricalInputError(f"cannot start a local Ray: {_first_line(error)}") from None
        hint = "" if options.address == "auto" else (" (is Ray's version the same here? a cluster with token "
                                                     "authentication needs RAY_AUTH_MODE=token here: docs/cluster.md)")
        raise EmpiricalInputError(f"cannot join the Ray cluster at --address {options.address}: "
                                  f"{_first_line(error)}{hint}") from None


def _gpus(ray: ModuleType, base: TrainConfig, options: RayOptions) -> float:
    """GPUs per task: as given, else 1 for a GPU config on a cluster that has GPUs, else 0."""
    if options.gpus is not None:
        return options.gpus
    return 1 if base.device != "cpu" and ray.cluster_resources().get("GPU", 0) > 0 else 0


def _task(ray: ModuleType, base: TrainConfig, options: RayOptions, reused: bool) -> Any:
    """The remote function with the task's resources. Application errors are not retried, dead workers are."""
    gpus = _gpus(ray, base, options)
    if gpus == 0 and base.device.startswith("cuda"):
        raise EmpiricalInputError(f"--device {base.device} needs GPUs per task: set --ray-gpus (e.g. 1 or 0.25) "
                                  "or use --device cpu")
    runtime_env = dict(options.runtime_env or {}) if reused else {}  # a fresh instance got it in ray.init
    if gpus == 0 and base.device != "cpu":
        # Ray no longer hides GPUs from a task given none (RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO); without this,
        # device "auto" would take a GPU no task reserved.
        runtime_env["env_vars"] = {**runtime_env.get("env_vars", {}), "CUDA_VISIBLE_DEVICES": ""}
    task_options: dict[str, Any] = {"num_cpus": options.cpus, "num_gpus": gpus, "max_retries": options.max_retries,
                                    "retry_exceptions": False}
    if runtime_env:
        task_options["runtime_env"] = runtime_env
    return ray.remote(run_bundle_task).options(**task_options)


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [""])[0]


def _outcomes(ray: ModuleType, ref: Any, bundle: Sequence[Cell]) -> list[Outcome]:
    """The finished task's results, one per cell, or its error as "Type: message" for every cell of the bundle (the
    run's own exception, not Ray's wrapper)."""
    try:
        return [Outcome(cell, result) for cell, result in zip(bundle, ray.get(ref), strict=True)]
    except ray.exceptions.RayTaskError as error:  # raised inside the run: report the original exception
        cause = error.cause if error.cause is not None else error
        return [Outcome(cell, None, f"{type(cause).__name__}: {cause}") for cell in bundle]
    except ray.exceptions.RayError as error:  # the worker died more than max_retries times, was OOM-killed, ...
        return [Outcome(cell, None, f"{type(error).__name__}: {_first_line(error)}") for cell in bundle]


def execute_ray(base: TrainConfig, cells: Sequence[Cell], options: RayOptions,
                reference: Reference | None = None, ensemble_mode: Ensemble = "auto",
                log_dir: str | None = None) -> Iterator[Outcome]:
    """Run the cells as Ray tasks, one per bundle (empirical.sweep.bundles: the seeds trained together per
    `ensemble_mode`), and yield each outcome as its task finishes (in completion order), like `execute`.

    Uses the Ray instance this process already has (and leaves it running), else starts or joins one per
    `options` and shuts it down at the end. On early exit (generator closed, KeyboardInterrupt) pending tasks
    are cancelled.
    """
    ray = import_ray()
    reused = ray.is_initialized()
    if not reused:
        _init(ray, options)
    try:
        task = _task(ray, base, options, reused)
        threads = max(1, int(options.cpus))
        shared = None if reference is None else ray.put(reference)  # θ_ref sent to the object store once
        slots = max(1, int(ray.cluster_resources().get("CPU", 1) // options.cpus))  # tasks that can run at once
        pending = {task.remote(base, bundle, threads, shared, ensemble_mode, log_dir): bundle
                   for bundle in bundles(base, cells, ensemble_mode, slots)}
        try:
            while pending:
                [ref], _ = ray.wait(list(pending), num_returns=1)
                yield from _outcomes(ray, ref, pending.pop(ref))
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
    finally:
        if not reused:
            ray.shutdown()
