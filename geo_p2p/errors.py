"""The one error type for bad input: what is wrong and what to do, in one line."""

from __future__ import annotations


class RenderError(ValueError):
    """A problem with the user's input or options; the message says what is wrong and what to do.

    ``param`` names the option (or argument) at fault, for the command line, which reports it in
    one line with exit status 2. Secrets in URLs (query strings, passwords) are redacted.
    """

    def __init__(self, message: str, param: str | None = None) -> None:
        from .inputs.paths import redact  # here: the inputs package raises this error

        super().__init__(redact(message))
        self.param = param


class DataError(RenderError):
    """A data folder or pair image that training or evaluation cannot use."""
