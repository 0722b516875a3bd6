"""Symbolic theory of the critical batch size of TTUR GAN training (sympy + numpy; never torch).

Entry points: ``python -m theory.critical`` (CLI), :func:`theory.analysis.analyse` (numbers for given constants),
:mod:`theory.families` (bound families as data), :mod:`theory.template` (the derivation and its proofs).
"""
