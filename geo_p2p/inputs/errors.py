"""The error of an input that cannot be read as given."""

from __future__ import annotations


class BadInput(ValueError):
    """An input that cannot be read as given: the message says what is wrong and what to do;
    ``param`` names the argument or option at fault, for the command line."""

    def __init__(self, message: str, param: str = "INPUT") -> None:
        super().__init__(message)
        self.param = param
