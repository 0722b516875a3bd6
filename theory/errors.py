"""Errors for bad input: the CLI prints their message as one line and exits with status 2."""


class TheoryInputError(ValueError):
    """Input the theory cannot use: a constant outside its domain, a malformed file, an unknown family."""


class UnreachableTarget(TheoryInputError):
    """The target ε² lies at or below a player's floor C_P: no K and b certify it."""

    def __init__(self, message: str, min_epsilon: float) -> None:
        super().__init__(message)
        self.min_epsilon = min_epsilon
