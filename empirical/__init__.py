"""Empirical part of the toolkit: TTUR GAN training, FID, batch-size sweeps and constants estimation.

Empty for now: the engine (data, models, optimizers, FID, steps-to-target) arrives with the next issue.
It may import :mod:`theory`; :mod:`theory` never imports it (nor torch).
"""
