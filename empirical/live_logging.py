"""Live TensorBoard logs of a sweep (`python -m empirical.sweep ... --tensorboard DIR`), one TensorBoard run per cell.

Each run's worker writes its own event files under DIR/<cell> at every evaluation, as it trains: FID, the mean D and
G losses since the previous evaluation, the gradient norms, the balance ratio and, with measure_batch > 0, the
theory's own measures (unbiased ‖∇_P L_P‖² and the VI gap). `tensorboard --logdir DIR` shows a long sweep while it
runs. Off by default; the store, resume and the results do not depend on it. Event files are written with
tensorboardX (the optional extra `[tensorboard]`), which needs neither TensorFlow nor the TensorBoard server.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from empirical.errors import EmpiricalInputError
from empirical.store import Cell
from empirical.train import EvalPoint

NEEDS_TENSORBOARDX = "--tensorboard needs tensorboardX: pip install 'ttur-critical-batch[tensorboard]'"
# EvalPoint field -> TensorBoard tag
TAGS = {"fid": "fid", "loss_d": "loss/D", "loss_g": "loss/G", "grad_norm_d": "grad_norm/D",
        "grad_norm_g": "grad_norm/G", "balance_ratio": "balance_ratio", "grad_sq_d": "theory/grad_sq_D",
        "grad_sq_g": "theory/grad_sq_G", "vi_gap_d": "theory/vi_gap_D", "vi_gap_g": "theory/vi_gap_G"}


def check_tensorboardx() -> None:
    """A one-line error, before the sweep starts, when tensorboardX is missing."""
    try:
        import tensorboardX  # noqa: F401
    except ImportError:
        raise EmpiricalInputError(NEEDS_TENSORBOARDX) from None


def run_name(cell: Cell) -> str:
    """The TensorBoard run of a cell, sortable by batch size: b0064-seed0-adam-x1."""
    return f"b{cell.batch_size:04d}-seed{cell.seed}-{cell.optimizer}-x{cell.lr_scale:g}"


class RunLog:
    """The event files of one cell's run; call it with each evaluation, close it when the run ends."""

    def __init__(self, log_dir: str | Path, cell: Cell) -> None:
        from tensorboardX import SummaryWriter

        self.writer: Any = SummaryWriter(str(Path(log_dir) / run_name(cell)))

    def __call__(self, point: EvalPoint, flush: bool = True) -> None:
        for field, tag in TAGS.items():
            value = getattr(point, field)
            if value is not None and math.isfinite(value):
                self.writer.add_scalar(tag, value, point.step)
        if flush:
            self.writer.flush()  # visible at once: a GPU sweep's evaluations are minutes apart

    def close(self) -> None:
        self.writer.close()
