"""Bound families: the shipped ones fit the template, and a user can add one without touching the solver."""

import dataclasses
import math

import pytest

from theory.analysis import ConstantValue, analyse, resolve_constants
from theory.bounds import bounds_for, check_family
from theory.errors import TheoryInputError
from theory.families import FAMILIES, SGD, BoundFamily, Default, get_family, register_family


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_shipped_family_is_proven_to_fit_the_template(name):
    family = FAMILIES[name]
    check_family(family)
    facts = bounds_for(family).facts
    lemmas = family.lemmas() if family.lemmas is not None else ()
    assert len(facts) == 6 + len(lemmas)  # A > 0, B > 0, C >= 0 for both players, then the derivation's own steps
    assert all(f.holds for f in facts)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_shipped_family_runs_on_its_defaults(name):
    family = FAMILIES[name]
    a = analyse(family, resolve_constants(family, {}), ConstantValue("epsilon", family.epsilon.value, "default"))
    for r in a.players.values():
        assert r.b_star == pytest.approx(2 * r.B / (a.epsilon.value**2 - r.C), rel=1e-12)


def test_sgd_family_closed_forms():
    fb = bounds_for(SGD)
    sub = {s.name: s for s in fb.args}
    D = fb.players["D"]
    assert D.A == 2 * sub["gap_D"] / sub["alpha_D"]
    assert D.B == sub["smoothness_D"] * sub["alpha_D"] * sub["sigma2_D"]
    # the coupling: the opponent's learning rate over the player's own
    ratio = D.C / (sub["alpha_G"] / sub["alpha_D"])
    assert not ratio.has(sub["alpha_G"]) and not ratio.has(sub["alpha_D"])


def _user_family(**changes) -> BoundFamily:
    base = BoundFamily(
        name="sgd-no-coupling",
        summary="L-smooth SGD without the opponent's drift",
        measure="mean squared gradient norm",
        constants=("alpha", "smoothness", "sigma2", "gap"),
        A="2*gap_P/alpha_P",
        B="smoothness_P*alpha_P*sigma2_P",
        C="0",
        defaults={k: v for k, v in SGD.defaults.items() if k.rpartition("_")[0] in
                  ("alpha", "smoothness", "sigma2", "gap")},
        epsilon=Default(0.1, "test"),
    )
    return dataclasses.replace(base, **changes)


def test_user_family_registers_and_solves_without_solver_changes():
    family = register_family(_user_family())
    try:
        assert get_family("sgd-no-coupling") is family
        a = analyse(family, resolve_constants(family, {}), ConstantValue("epsilon", 0.1, "test"))
        v = {k: c.value for k, c in a.constants.items()}
        # C = 0: b* = 2 L α σ² / ε²
        assert a.players["D"].b_star == pytest.approx(2 * v["smoothness_D"] * v["alpha_D"] * v["sigma2_D"] / 0.01)
        assert a.players["G"].K_inf == pytest.approx(2 * v["gap_G"] / v["alpha_G"] / 0.01)
    finally:
        FAMILIES.pop("sgd-no-coupling", None)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"A": "2*gap_P/alpah_P"}, "unknown names alpah_P"),
        ({"B": "smoothness_P*(alpha_P - sigma2_P)"}, "cannot prove B_D"),  # sign depends on the constants
        ({"C": "-gap_P"}, "cannot prove C_D"),
        ({"A": "2*gap_P/"}, "cannot parse A"),
        ({"constants": ("alpha", "smoothness", "sigma2", "gap", "wobble")}, "no ConstantSpec"),
        ({"defaults": {"alpha_D": Default(-1.0, "x")}}, "alpha_D must be > 0"),
    ],
)
def test_bad_family_is_refused_with_one_line(changes, message):
    with pytest.raises(TheoryInputError, match=message) as info:
        register_family(_user_family(name="bad", **changes))
    assert "\n" not in str(info.value)
    assert "bad" not in FAMILIES


def test_momentum_domain_is_used_in_proofs():
    # β1 ∈ [0, 1): β1/(1 − β1) >= 0 is provable, β1 − 1/2 >= 0 is not.
    ok = _user_family(name="m-ok", constants=("alpha", "smoothness", "sigma2", "gap", "beta1"),
                      C="beta1_P/(1 - beta1_P)")
    check_family(ok)
    bad = dataclasses.replace(ok, name="m-bad", C="beta1_P - 1/2")
    with pytest.raises(TheoryInputError, match="cannot prove C_D"):
        check_family(bad)


def test_adam_momentum_floor_makes_adam_cs_no_tighter_than_adam():
    # adam-cs bounds the momentum term by Cauchy–Schwarz: its floor is larger than adam's for the same
    # constants (docs/theory.md explains why adam is the shipped default).
    adam, cs = FAMILIES["adam"], FAMILIES["adam-cs"]
    consts = resolve_constants(adam, {})
    a = analyse(adam, consts, ConstantValue("epsilon", 30.0, "test"))
    c = analyse(cs, consts, ConstantValue("epsilon", 30.0, "test"))
    for p in "DG":
        assert c.players[p].C > a.players[p].C
        beta = consts[f"beta1_{p}"].value
        trivial = math.sqrt(consts[f"dim_{p}"].value) * consts[f"dist_{p}"].value * consts[f"grad_bound_{p}"].value
        # with β1 >= 1/2 the CS floor is at least the trivial Cauchy–Schwarz bound of the VI gap itself
        if beta >= 0.5:
            assert c.players[p].C >= trivial


def test_registering_over_an_existing_name_is_refused():
    with pytest.raises(TheoryInputError, match="already registered"):
        register_family(_user_family(name="adam"))
    assert get_family("adam") is FAMILIES["adam"] and FAMILIES["adam"].name == "adam"
    assert get_family("adam").constants[0] == "alpha" and get_family("adam").A.startswith("(1 + beta1_P)")
