"""The named constants of a TTUR training run, documented once and shared by every bound family.

A constant is defined per player: ``alpha`` becomes ``alpha_D`` (discriminator) and ``alpha_G`` (generator).
Those per-player names are the keys of the constants JSON file (see :mod:`theory.schema`) and of the CLI
flags (``--alpha-d``). Each constant states its meaning, unit, how to measure it and its domain; the domain
is both checked on input and turned into sympy assumptions for the proofs in :mod:`theory.template`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import sympy as sp

from theory.errors import TheoryInputError

PLAYERS: tuple[str, str] = ("D", "G")
PLAYER_NAMES = {"D": "discriminator", "G": "generator"}

# Domains a constant can have. "unit_interval" is 0 <= x < 1 (a momentum coefficient).
DOMAINS = ("positive", "nonnegative", "unit_interval")


def flag_name(key: str) -> str:
    """The CLI flag of a per-player constant key: ``alpha_D`` -> ``--alpha-d``."""
    return "--" + key.replace("_", "-").lower()


def other(player: str) -> str:
    """The opponent of ``player`` in the two-player game."""
    return "G" if player == "D" else "D"


@dataclass(frozen=True)
class ConstantSpec:
    """One constant of a bound family, defined for a generic player P."""

    name: str  # base name; the per-player keys are f"{name}_D" and f"{name}_G"
    display: str  # readable symbol with "<P>" for the player, e.g. "σ²_<P>"
    latex: str  # LaTeX symbol with "<P>", e.g. r"\sigma^2_{<P>}"
    meaning: str
    unit: str
    how_to_measure: str
    domain: str = "positive"

    def key(self, player: str) -> str:
        return f"{self.name}_{player}"

    def display_for(self, player: str) -> str:
        return self.display.replace("<P>", player)

    def latex_for(self, player: str) -> str:
        return self.latex.replace("<P>", player)

    def symbol(self, player: str) -> sp.Symbol:
        """The sympy symbol of this constant for ``player``, carrying the sign its domain guarantees."""
        if self.domain == "positive":
            return sp.Symbol(self.key(player), positive=True)
        # nonnegative and unit_interval: sympy cannot state x < 1 as an assumption; the proofs
        # substitute x = u/(1+u) with u >= 0 instead (see proof_substitution).
        return sp.Symbol(self.key(player), nonnegative=True)

    def proof_substitution(self, player: str) -> dict[sp.Symbol, sp.Expr]:
        """A substitution under which sympy's assumptions encode the whole domain.

        For 0 <= x < 1 we write x = u/(1+u) with u >= 0, which maps [0, inf) onto [0, 1) one to one,
        so a sign proven for every u >= 0 holds on the whole domain.
        """
        if self.domain != "unit_interval":
            return {}
        u = sp.Symbol(f"u_{self.key(player)}", nonnegative=True)
        return {self.symbol(player): u / (1 + u)}

    def check(self, player: str, value: float) -> float:
        """Return ``value`` as a float if it lies in the domain, else raise a one-line error."""
        key = self.key(player)
        try:
            x = float(value)
        except (TypeError, ValueError):
            raise TheoryInputError(f"{key} must be a number, got {value!r}") from None
        if not math.isfinite(x):
            raise TheoryInputError(f"{key} must be finite, got {value!r}")
        if self.domain == "positive" and x <= 0:
            raise TheoryInputError(f"{key} must be > 0 ({self.meaning}), got {x:g}")
        if self.domain == "nonnegative" and x < 0:
            raise TheoryInputError(f"{key} must be >= 0 ({self.meaning}), got {x:g}")
        if self.domain == "unit_interval" and not 0 <= x < 1:
            raise TheoryInputError(f"{key} must lie in [0, 1) ({self.meaning}), got {x:g}")
        return x


def _spec(name, display, latex, meaning, unit, how, domain="positive") -> ConstantSpec:
    return ConstantSpec(name, display, latex, meaning, unit, how, domain)


# The catalogue. A family picks the constants it needs from here (or defines its own ConstantSpec);
# keeping one definition per name keeps the JSON schema the same for every family.
CATALOGUE: dict[str, ConstantSpec] = {
    s.name: s
    for s in (
        _spec(
            "alpha", "α_<P>", r"\alpha_<P>",
            "learning rate of player P (the TTUR pair is alpha_D, alpha_G)",
            "parameter units per gradient unit (SGD) or per preconditioned step (Adam)",
            "the optimizer setting",
        ),
        _spec(
            "sigma2", "σ²_<P>", r"\sigma^2_<P>",
            "per-sample gradient variance of P: E||grad l(θ; ξ) − grad L(θ)||² = tr Σ_P "
            "(a mini-batch of size b has variance σ²/b)",
            "squared gradient norm",
            "trace of the per-sample gradient covariance (per-sample gradients, or the two-batch "
            "estimator of McCandlish et al.)",
        ),
        _spec(
            "grad_bound", "G_<P>", r"G_<P>",
            "bound on the full-gradient norm of P's loss along the run: ||grad L_P(θ_k)|| <= G_P",
            "gradient norm",
            "a high quantile of the full-gradient norm (unbiased two-batch estimate) along a run",
            "nonnegative",
        ),
        _spec(
            "dist", "Dist_<P>", r"\mathrm{Dist}_<P>",
            "per-coordinate distance bound: |θ_k,i − θ_i| <= Dist_P for the iterates and the reference "
            "point θ of the stationarity measure (bounded domain)",
            "parameter units",
            "max over the run of ||θ_k − θ_ref||_inf, θ_ref the reference point of the VI gap",
        ),
        _spec(
            "dim", "d_<P>", r"d_<P>",
            "number of trainable parameters of player P",
            "count",
            "sum of p.numel() over the player's parameters",
        ),
        _spec(
            "beta1", "β1_<P>", r"\beta_{1,<P>}",
            "first-moment (momentum) coefficient of P's Adam-type optimizer",
            "dimensionless, in [0, 1)",
            "the optimizer setting",
            "unit_interval",
        ),
        _spec(
            "beta2", "β2_<P>", r"\beta_{2,<P>}",
            "second-moment coefficient of P's Adam-type optimizer (v_k = β2·v_{k−1} + (1 − β2)·g_k²)",
            "dimensionless, in [0, 1)",
            "the optimizer setting (torch's betas[1]; RMSprop's alpha)",
            "unit_interval",
        ),
        _spec(
            "h_min", "h_min,<P>", r"h_{\min,<P>}",
            "lower bound of the diagonal preconditioner entries of P (Adam: sqrt(v̂)+eps; "
            "beta2 enters the bound only through h_min and h_max)",
            "gradient units",
            "min over coordinates and steps of sqrt(v̂)+eps from the optimizer state",
        ),
        _spec(
            "h_max", "h_max,<P>", r"h_{\max,<P>}",
            "upper bound of the diagonal preconditioner entries of P",
            "gradient units",
            "max over coordinates at the last step of sqrt(v̂)+eps from the optimizer state",
        ),
        _spec(
            "smoothness", "L_<P>", r"L_<P>",
            "Lipschitz constant of grad_θP L_P in θ_P (L-smoothness of P's loss in its own parameters)",
            "gradient units per parameter unit",
            "largest Hessian eigenvalue of L_P in θ_P (power iteration on Hessian-vector products)",
        ),
        _spec(
            "gap", "Δ_<P>", r"\Delta_<P>",
            "initial gap: L_P(θ_0) − inf L_P (the loss's lower bound over the run)",
            "loss units",
            "initial loss minus the loss's lower bound (0 for the BCE losses)",
        ),
        _spec(
            "cross_lip", "M_<P>", r"M_<P>",
            "cross-Lipschitz constant: ||grad_θQ L_P|| <= M_P, how fast the opponent Q's parameters "
            "move P's loss",
            "loss units per parameter unit",
            "a high quantile of the norm of the gradient of L_P with respect to the opponent's parameters",
            "nonnegative",
        ),
    )
}
