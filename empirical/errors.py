"""Errors for bad input to the empirical part: CLIs print their message as one line and exit with status 2."""


class EmpiricalInputError(ValueError):
    """Input the engine cannot use: a missing or malformed dataset, an unknown preset, optimizer or feature name."""
