"""Bound families: the per-player inequality ``V_P(K, b) <= A_P/K + B_P/b + C_P`` as data.

A family names its constants (from :data:`theory.constants.CATALOGUE` or its own specs) and gives A, B, C
as sympy-parsable strings in which ``x_P`` is player P's constant ``x`` and ``x_Q`` the opponent's. Nothing
in the solver knows any family: to add one, build a :class:`BoundFamily` and call :func:`register_family`.
The derivation of every shipped family is written out in docs/theory.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from itertools import pairwise

from theory.constants import CATALOGUE, ConstantSpec
from theory.errors import TheoryInputError
from theory.lemmas import amsgrad_l1_facts
from theory.template import Fact


@dataclass(frozen=True)
class Default:
    """A default value and where it comes from (printed with every result that uses it)."""

    value: float
    source: str


@dataclass(frozen=True)
class Validity:
    """A condition on a player's constants under which the family's bound was derived."""

    condition: str  # sympy relational in x_P / x_Q names, e.g. "alpha_P*smoothness_P <= 1"
    reason: str


@dataclass(frozen=True)
class BoundFamily:
    name: str
    summary: str
    measure: str  # the stationarity measure V_P that the bound controls; ε² is in its units
    constants: tuple[str, ...]  # base names, each defined for both players
    A: str
    B: str
    C: str
    defaults: dict[str, Default]  # per-player keys ("alpha_D") -> default
    epsilon: Default
    validity: tuple[Validity, ...] = ()
    reference: str = "docs/theory.md"
    specs: tuple[ConstantSpec, ...] = field(default=())  # constants not in the catalogue
    # the derivation's own algebraic steps as sympy facts (theory/lemmas.py), proven with the template's in --proofs
    lemmas: Callable[[], tuple[Fact, ...]] | None = None

    def spec(self, name: str) -> ConstantSpec:
        for s in self.specs:
            if s.name == name:
                return s
        if name in CATALOGUE:
            return CATALOGUE[name]
        raise TheoryInputError(f"family {self.name!r} uses constant {name!r}, which has no ConstantSpec")


FAMILIES: dict[str, BoundFamily] = {}


def register_family(family: BoundFamily) -> BoundFamily:
    """Add ``family`` to the registry after checking that its expressions parse and fit the template."""
    from theory.bounds import check_family  # deferred: bounds needs this module's types

    if family.name in FAMILIES and FAMILIES[family.name] is not family:
        raise TheoryInputError(f"a family named {family.name!r} is already registered; choose another name")
    check_family(family)
    FAMILIES[family.name] = family
    return family


def get_family(name: str) -> BoundFamily:
    try:
        return FAMILIES[name]
    except KeyError:
        known = ", ".join(sorted(FAMILIES))
        raise TheoryInputError(f"unknown family {name!r} (known: {known})") from None


# --- shared defaults -------------------------------------------------------------------------------------
# These are the Python API's defaults (resolve_constants(family, {}), the doctests, the empirical report when no
# measured file fits its sweep). The CLI does not use them for any constant its preset's measured file has:
# `python -m theory.critical` takes its defaults from theory/measured/<preset>.json (theory.measured), and
# falls back to these only for a constant that file lacks, labelled as a family default (docs/theory.md §7).
# Only the learning rates, β1, the parameter counts and the BCE gaps below have a source outside this
# file; every other default is an illustrative order of magnitude, labelled as such wherever it is printed.
ILLUSTRATIVE = "illustrative, not measured"
_ALPHA = {
    "alpha_D": Default(3e-4, "Adam TTUR rate α_D of the official DCGAN code (reference.md §1)"),
    "alpha_G": Default(1e-4, "Adam TTUR rate α_G of the official DCGAN code (reference.md §1)"),
}


def dcgan_parameter_count(player: str, width: int = 64, nz: int = 100, channels: int = 3) -> int:
    """Trainable parameters of the 64-px DCGAN (the paper's architecture): 4×4 bias-free convolutions,
    BatchNorm affine (2 per channel) after every layer but D's first and last and G's last."""
    chans = [width, 2 * width, 4 * width, 8 * width]  # 64 -> 32 -> 16 -> 8 -> 4 px
    if player == "D":
        convs = [channels * chans[0]] + [a * b for a, b in pairwise(chans)] + [chans[-1]]
        norms = chans[1:]
    else:
        rev = chans[::-1]
        convs = [nz * rev[0]] + [a * b for a, b in pairwise(rev)] + [rev[-1] * channels]
        norms = rev
    return 16 * sum(convs) + 2 * sum(norms)


_DCGAN_DIM = {
    "dim_D": Default(dcgan_parameter_count("D"), "parameter count of the 64-px DCGAN discriminator, width 64"),
    "dim_G": Default(dcgan_parameter_count("G"), "parameter count of the 64-px DCGAN generator, width 64, nz=100"),
}

ADAM = BoundFamily(
    name="adam",
    summary="Adam-type TTUR (AMSGrad-monotone diagonal preconditioner, momentum β1), per player",
    measure="(1/K) Σ_k E⟨θ_k − θ, ∇_P L_P(θ_k)⟩, the variational-inequality gap at a reference point θ",
    constants=("alpha", "beta1", "sigma2", "grad_bound", "dist", "dim", "h_min", "h_max"),
    A="(1 + beta1_P)*dim_P*dist_P**2*h_max_P/(2*alpha_P*(1 - beta1_P))",
    B="(1 + beta1_P)*alpha_P*sigma2_P/(2*(1 - beta1_P)*h_min_P)",
    C="(1 + beta1_P)*alpha_P*grad_bound_P**2/(2*(1 - beta1_P)*h_min_P)",
    validity=(Validity("h_min_P <= h_max_P", "the preconditioner bounds need h_min <= h_max"),),
    defaults={
        **_ALPHA,
        "beta1_D": Default(0.5, "Adam betas (0.5, 0.999) of the official code (reference.md §1)"),
        "beta1_G": Default(0.5, "Adam betas (0.5, 0.999) of the official code (reference.md §1)"),
        **_DCGAN_DIM,
        "sigma2_D": Default(100.0, ILLUSTRATIVE),
        "sigma2_G": Default(100.0, ILLUSTRATIVE),
        "grad_bound_D": Default(1.0, ILLUSTRATIVE),
        "grad_bound_G": Default(1.0, ILLUSTRATIVE),
        "dist_D": Default(0.02, ILLUSTRATIVE + "; the DCGAN init std is 0.02"),
        "dist_G": Default(0.02, ILLUSTRATIVE + "; the DCGAN init std is 0.02"),
        "h_min_D": Default(1e-4, ILLUSTRATIVE),
        "h_min_G": Default(1e-4, ILLUSTRATIVE),
        "h_max_D": Default(1e-2, ILLUSTRATIVE),
        "h_max_G": Default(1e-2, ILLUSTRATIVE),
    },
    epsilon=Default(3.0, ILLUSTRATIVE + "; ε² is in the units of the VI gap"),
)

ADAM_CS = BoundFamily(
    name="adam-cs",
    summary="Adam-type TTUR with the momentum term bounded by Cauchy–Schwarz: the template's separate "
    "β1 floor (compare with 'adam')",
    measure=ADAM.measure,
    constants=ADAM.constants,
    A="dim_P*dist_P**2*h_max_P/(2*alpha_P*(1 - beta1_P))",
    B="alpha_P*sigma2_P/(2*(1 - beta1_P)*h_min_P)",
    C="alpha_P*grad_bound_P**2/(2*(1 - beta1_P)*h_min_P)"
    " + beta1_P*sqrt(dim_P)*dist_P*sqrt(grad_bound_P**2 + sigma2_P)/(1 - beta1_P)",
    validity=ADAM.validity,
    defaults=ADAM.defaults,
    epsilon=Default(20.0, ILLUSTRATIVE + "; must exceed this family's momentum floor"),
)

SGD = BoundFamily(
    name="sgd",
    summary="L-smooth SGD per player (the textbook descent-lemma bound of Ghadimi & Lan 2013) plus the TTUR "
    "coupling (ours): the opponent's steps move P's loss by at most M_P·α_Q·E||g_Q|| per iteration",
    measure="(1/K) Σ_k E||∇_P L_P(θ_k)||², the mean squared gradient norm",
    constants=("alpha", "smoothness", "sigma2", "gap", "cross_lip", "grad_bound"),
    A="2*gap_P/alpha_P",
    B="smoothness_P*alpha_P*sigma2_P",
    C="2*cross_lip_P*alpha_Q*sqrt(grad_bound_Q**2 + sigma2_Q)/alpha_P",
    validity=(Validity("alpha_P*smoothness_P <= 1", "the descent lemma step needs α_P <= 1/L_P"),),
    defaults={
        **_ALPHA,
        "gap_D": Default(2 * math.log(2), "BCE loss of an uninformed discriminator (D ≡ 1/2): 2 ln 2, lower bound 0"),
        "gap_G": Default(math.log(2), "non-saturating generator loss at D ≡ 1/2: ln 2, lower bound 0"),
        "smoothness_D": Default(100.0, ILLUSTRATIVE),
        "smoothness_G": Default(100.0, ILLUSTRATIVE),
        "sigma2_D": Default(100.0, ILLUSTRATIVE),
        "sigma2_G": Default(100.0, ILLUSTRATIVE),
        "grad_bound_D": Default(1.0, ILLUSTRATIVE),
        "grad_bound_G": Default(1.0, ILLUSTRATIVE),
        "cross_lip_D": Default(1e-3, ILLUSTRATIVE),
        "cross_lip_G": Default(1e-3, ILLUSTRATIVE),
    },
    epsilon=Default(0.3, ILLUSTRATIVE + "; ε² is in squared-gradient units"),
)

SGD_FROZEN = BoundFamily(
    name="sgd-frozen",
    summary="L-smooth SGD per player with the opponent held fixed (descent lemma only, no TTUR coupling): "
    "the textbook smooth-SGD bound of Ghadimi & Lan (2013), C = 0",
    measure=SGD.measure,
    constants=("alpha", "smoothness", "sigma2", "gap"),
    A="2*gap_P/alpha_P",
    B="smoothness_P*alpha_P*sigma2_P",
    C="0",
    validity=SGD.validity,
    defaults={k: v for k, v in SGD.defaults.items() if not k.startswith(("cross_lip", "grad_bound"))},
    epsilon=SGD.epsilon,
)

# AMSGrad with the quadratic term bounded from the gradient itself (docs/theory.md §4): AMSGrad's
# v̂ >= v >= (1 − β2)·Σ_j β2^(k−j)·g_j² bounds each coordinate's m²/h by |m|·sqrt((1 − β1)/(1 − β2)), so no
# 1/h_min appears; the price is sqrt(d) (||g||_1 <= sqrt(d)·||g||) and the tangent bound
# sqrt(G² + σ²/b) <= G + σ²/(2·G·b), which keeps the template's form and needs G > 0.
_GRAD_BOUND_POSITIVE = replace(
    CATALOGUE["grad_bound"], domain="positive",
    meaning=CATALOGUE["grad_bound"].meaning + " (> 0 here: the bound divides by G)")
AMSGRAD_L1 = BoundFamily(
    name="amsgrad-l1",
    summary="AMSGrad TTUR (monotone v̂ = max(v̂, v/(1 − β2^t)), momentum β1 <= β2), the preconditioned quadratic term "
    "bounded by the gradient's l1 norm instead of 1/h_min, per player",
    measure=ADAM.measure,
    constants=("alpha", "beta1", "beta2", "sigma2", "grad_bound", "dist", "dim", "h_max"),
    A="(1 + beta1_P)*dim_P*dist_P**2*h_max_P/(2*alpha_P*(1 - beta1_P))",
    B="(1 + beta1_P)*alpha_P*sqrt(dim_P)*sigma2_P/(4*grad_bound_P*sqrt((1 - beta1_P)*(1 - beta2_P)))",
    C="(1 + beta1_P)*alpha_P*sqrt(dim_P)*grad_bound_P/(2*sqrt((1 - beta1_P)*(1 - beta2_P)))",
    validity=(Validity("beta1_P <= beta2_P", "the bound m² <= (1 − β1)/(1 − β2)·v needs β1 <= β2"),),
    defaults={
        **{k: v for k, v in ADAM.defaults.items() if not k.startswith("h_min")},
        "beta2_D": Default(0.999, "Adam betas (0.5, 0.999) of the official code (reference.md §1)"),
        "beta2_G": Default(0.999, "Adam betas (0.5, 0.999) of the official code (reference.md §1)"),
    },
    epsilon=Default(20.0, ILLUSTRATIVE + "; ε² is in the units of the VI gap"),
    specs=(_GRAD_BOUND_POSITIVE,),
    lemmas=amsgrad_l1_facts,
)

# The CLI's default family: the only shipped family with no floor (C = 0), so it certifies any ε. Every other
# family's floor exceeds the ε² the presets' reference runs reached (docs/constants.md renders the numbers from
# theory/measured/*.json): `adam` and `adam-cs` divide by the measured h_min (≈ Adam's eps on dead coordinates),
# `sgd` carries the TTUR coupling, amsgrad-l1 avoids h_min but pays sqrt(d)/sqrt(1 − β2) (docs/theory.md §3a).
DEFAULT_FAMILY = "sgd-frozen"

# The shipped families are registered without the sympy check at import (it costs about a second each);
# tests/theory/test_families.py runs check_family on every one of them.
FAMILIES.update({f.name: f for f in (ADAM, ADAM_CS, AMSGRAD_L1, SGD, SGD_FROZEN)})
