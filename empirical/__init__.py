"""Empirical part of the toolkit: TTUR GAN training, FID and steps-to-target (sweeps and constants come next).

Data flow: data (mixtures, digits, images) → models and optimizers → train() → FID → RunResult.
It may import :mod:`theory`; :mod:`theory` never imports it (nor torch).
"""
