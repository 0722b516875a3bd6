"""Sweeps of a user's own training function: `python -m empirical.sweep --entry my_package.my_module:train ...`.

The function is called once per cell as `train(batch_size=b, seed=s, **params)` (params from `--set key=value`,
values read as JSON where they parse, else as strings) and yields `(step, fid)` at its evaluations, steps
increasing; step 0, if yielded, is the FID before training. It may also return the whole list instead of yielding.
The toolkit reads it as train() reads its own evaluations (empirical.stopping.Stopper): it stops the run at the
tightest target (or, with `--floor true`, once its FID settles) or at max_steps, by closing the generator, so a
user's loop that never ends is fine; a NaN/inf FID is a divergence. The run is stored like a preset's (SQLite,
resume, kill -9, Ray) and the report, laws and predictors read it the same way.

    def train(batch_size, seed, lr=2e-4):
        torch.manual_seed(seed)
        ...                                  # the user's models, data and loop
        for step in itertools.count(1):
            ...                              # one training step
            if step % 50 == 0:
                yield step, fid_of(generator)
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from empirical.config import TrainConfig
from empirical.errors import EmpiricalInputError
from empirical.stopping import Stopper
from empirical.train import EvalPoint, RunResult


def load_entry(spec: str) -> Callable[..., Any]:
    """The function `module:name` names; a one-line error when the module, the name or a callable is missing."""
    module_name, _, name = spec.partition(":")
    if not module_name or not name:
        raise EmpiricalInputError(f"--entry must be module:function, e.g. my_package.gan:train, got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise EmpiricalInputError(f"--entry {spec}: cannot import {module_name} ({error})") from None
    function = getattr(module, name, None)
    if not callable(function):
        raise EmpiricalInputError(f"--entry {spec}: {module_name} has no function {name!r}")
    return function


def parse_set(pairs: Sequence[str]) -> str:
    """--set key=value flags as the config's canonical `entry_params` text (JSON of the sorted dict)."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise EmpiricalInputError(f"--set takes key=value with key a Python name, got {pair!r}")
        if key in ("batch_size", "seed"):
            raise EmpiricalInputError(f"--set {key}: the sweep sets {key} itself (--batch-sizes, --seeds)")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return json.dumps(params, sort_keys=True) if params else ""


def entry_params(config: TrainConfig) -> dict[str, Any]:
    """The keyword arguments --set gave, as the function receives them."""
    return json.loads(config.entry_params) if config.entry_params else {}


def check_signature(function: Callable[..., Any], spec: str, params: dict[str, Any]) -> None:
    """Refuse, in one line, a function that cannot take batch_size, seed and the --set keys."""
    try:
        inspect.signature(function).bind(batch_size=1, seed=0, **params)
    except TypeError as error:
        raise EmpiricalInputError(f"--entry {spec} cannot be called as {spec.partition(':')[2]}(batch_size=..., "
                                  f"seed=...{''.join(f', {k}=...' for k in params)}): {error}") from None
    except ValueError:
        pass  # no signature to inspect (a builtin): the call itself will tell


def train_entry(config: TrainConfig, seed: int, on_eval: Callable[[EvalPoint], None] | None = None) -> RunResult:
    """One run of the user's function for this cell, stopped and recorded as empirical.train.train records a run;
    `on_eval(point)` at each evaluation as it is recorded (live logs)."""
    function = load_entry(config.entry or "")
    start = time.perf_counter()
    stopper = Stopper(config)
    history: list[EvalPoint] = []
    status: str | None = None
    produced = function(batch_size=config.batch_size, seed=seed, **entry_params(config))
    last = 0
    try:
        for step, fid in _checked(produced):
            if step > config.max_steps:
                break
            if step == 0:
                stopper.start(fid)
            else:
                status = stopper.update(step, fid)
            last = step
            if math.isfinite(fid):
                history.append(EvalPoint(step, fid, math.nan, math.nan, math.nan, math.nan, math.nan,
                                         time.perf_counter() - start))
                if on_eval is not None:
                    on_eval(history[-1])
            if status is not None:
                break
    finally:
        close = getattr(produced, "close", None)
        if close is not None:
            close()  # the user's generator runs its finally blocks; a loop that never ends stops here
    return RunResult(
        config=config, seed=seed, status=status or stopper.final_status(), steps_to_target=stopper.reached_at,
        steps_run=last, diverged_at=stopper.diverged_at, device="user", wall_seconds=time.perf_counter() - start,
        history=history)


def _checked(produced: Any) -> Iterator[tuple[int, float]]:
    """The function's (step, fid) pairs, checked one by one: steps integers ≥ 0 and increasing, FIDs numbers."""
    if produced is None or isinstance(produced, (str, bytes)) or not isinstance(produced, Iterable):
        raise TypeError("the entry function must yield (step, fid) pairs or return a list of them, got "
                        f"{type(produced).__name__}")
    previous = -1
    for item in produced:
        try:
            step, fid = item
            if isinstance(step, bool) or int(step) != step or step < 0:
                raise ValueError
            step, fid = int(step), float(fid)
        except (TypeError, ValueError):
            raise ValueError(f"the entry function must yield (step, fid) pairs with integer steps >= 0, got "
                             f"{item!r}") from None
        if step <= previous:
            raise ValueError(f"the entry function's steps must increase, got {step} after {previous}")
        previous = step
        yield step, fid
