"""The amsgrad-l1 family's derivation: sympy's facts, and Step 5′ against a brute-force AMSGrad simulation."""

import math

import numpy as np
import sympy as sp
from hypothesis import given
from hypothesis import strategies as st

from theory import lemmas
from theory.bounds import bounds_for
from theory.families import get_family
from theory.template import Fact


def test_every_amsgrad_l1_fact_holds():
    facts = lemmas.amsgrad_l1_facts()
    assert [f.name for f in facts if not f.holds] == []
    assert len(facts) == 5


def test_a_wrong_floor_fails_the_chain_fact():
    # A C with 1/(1 − β2) instead of 1/sqrt(...) (the slip the derivation is easiest to make) must not pass.
    wrong = lemmas.C_L1 * sp.sqrt((1 - lemmas.beta2) / (1 - lemmas.beta1))
    chain = next(f for f in lemmas.amsgrad_l1_facts() if f.name == "chain_is_B_over_b_plus_C")
    broken = Fact("broken", "", sp.simplify(chain.expr + lemmas.C_L1 - wrong), "zero")
    assert chain.holds and not broken.holds


def test_the_lemma_module_states_the_registered_family():
    fb = bounds_for(get_family("amsgrad-l1"))
    p = fb.players["D"]
    sym = {x.name: x for x in fb.args}
    u1, u2 = sp.Symbol("u1", nonnegative=True), sp.Symbol("u2", nonnegative=True)
    to_lemma = {sym["beta1_D"]: u1 / (1 + u1), sym["beta2_D"]: u2 / (1 + u2), sym["alpha_D"]: lemmas.alpha,
                sym["dim_D"]: lemmas.dim, sym["sigma2_D"]: lemmas.sigma2, sym["grad_bound_D"]: lemmas.G}
    assert sp.simplify(p.B.subs(to_lemma) - lemmas.B_L1) == 0
    assert sp.simplify(p.C.subs(to_lemma) - lemmas.C_L1) == 0
    assert "h_min" not in {s.name.rsplit("_", 1)[0] for s in fb.args}  # the point of the family


def _amsgrad_quadratic_term(g: np.ndarray, beta1: float, beta2: float, eps: float) -> float:
    """Σ_k <m_k, H_k⁻¹ m_k> of AMSGrad as empirical/optimizers.py runs it (v̂ = max(v̂, v/(1 − β2^k)),
    h = sqrt(v̂) + eps), by direct simulation (numpy: theory's tests never import torch)."""
    m = np.zeros(g.shape[1])
    v = np.zeros(g.shape[1])
    v_max = np.zeros(g.shape[1])
    total = 0.0
    for k, gk in enumerate(g, start=1):
        m = beta1 * m + (1 - beta1) * gk
        v = beta2 * v + (1 - beta2) * gk**2
        v_max = np.maximum(v_max, v / (1 - beta2**k))
        h = np.sqrt(v_max) + eps
        total += float(np.sum(np.divide(m**2, h, out=np.zeros_like(m), where=h > 0)))
    return total


@given(st.floats(0.0, 0.95), st.floats(0.0, 0.9999), st.integers(1, 40), st.integers(1, 3),
       st.integers(0, 2**32 - 1), st.sampled_from([0.0, 1e-8, 1e-3]))
def test_step_5_prime_holds_for_every_gradient_sequence(beta1, beta2, steps, dim, seed, eps):
    # Step 5′: Σ_k <m_k, H_k⁻¹ m_k> <= sqrt((1 − β1)/(1 − β2))·Σ_k ||g_k||_1 whenever β1 <= β2, for any gradients,
    # spikes after quiet stretches included (heavy-tailed draws).
    beta1 = min(beta1, beta2)
    g = np.random.default_rng(seed).standard_cauchy((steps, dim))
    lhs = _amsgrad_quadratic_term(g, beta1, beta2, eps)
    rhs = math.sqrt((1 - beta1) / (1 - beta2)) * float(np.abs(g).sum())
    assert lhs <= rhs * (1 + 1e-9)


def test_step_5_prime_is_nearly_attained_by_a_spike_after_silence():
    # g = 0 for many steps, then one spike: m²/h = (1 − β1)²|g|/sqrt(1 − β2) at the spike, within (1 − β1)^1.5 of
    # the bound: the 1/sqrt(1 − β2) (≈ 31.6 at β2 = 0.999) is real, not slack of the proof.
    beta1, beta2 = 0.5, 0.999
    g = np.zeros((2001, 1))
    g[-1] = 1.0
    lhs = _amsgrad_quadratic_term(g, beta1, beta2, 0.0)
    rhs = math.sqrt((1 - beta1) / (1 - beta2))
    # at k = 2001, 1 − β2^k = 0.865: the bias correction shrinks the spike's m²/h by sqrt(0.865)
    expected = (1 - beta1) ** 2 / math.sqrt((1 - beta2) / (1 - beta2**2001))
    # (v̂ before the spike is 0: the quiet stretch had g = 0, so the max is the spike's own corrected v)
    assert math.isclose(lhs, expected, rel_tol=1e-12)
    assert lhs / rhs > 0.9 * (1 - beta1) ** 1.5


def test_the_family_refuses_beta1_above_beta2():
    # Step 5′ compares β1^j with β2^j; outside β1 <= β2 the family says so instead of giving a number.
    import pytest

    from theory.analysis import ConstantValue, analyse, resolve_constants
    from theory.errors import TheoryInputError

    family = get_family("amsgrad-l1")
    values = resolve_constants(family, {"beta1_G": 0.9, "beta2_G": 0.5})
    with pytest.raises(TheoryInputError, match="beta1_G <= beta2_G"):
        analyse(family, values, ConstantValue("epsilon", 20.0, "test"))
