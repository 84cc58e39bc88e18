"""Exception types shared by every layer.

Two kinds of error exist and they travel differently:

* :class:`Pseudo3DError` (and :class:`ConfigError`) stop a command: a missing input path, an
  unwritable output directory, a bad option. The CLI prints the message and exits non-zero.
* :class:`StageError` belongs to one input. A runner turns it into a failure row (which input,
  which stage, why) and carries on with the rest of the corpus.
"""

from __future__ import annotations


class Pseudo3DError(Exception):
    """A user-facing error that stops the command; the message names what is wrong."""


class ConfigError(Pseudo3DError, ValueError):
    """A bad configuration value; the message names the option."""


def require(condition: bool, message: str) -> None:
    """Raise :class:`ConfigError` with ``message`` (which names the option) unless ``condition``."""
    if not condition:
        raise ConfigError(message)


class StageError(Exception):
    """One input failed in one stage.

    ``stage`` is the stage name (``probe``, ``decode``, ``track``, ``reconstruct``, ...),
    ``error`` a short machine-readable code (``not_a_video``, ``no_face``, ...) and the
    message the human-readable reason.
    """

    def __init__(self, stage: str, error: str, message: str):
        super().__init__(message)
        self.stage = stage
        self.error = error
        self.message = message

    def __reduce__(self):
        return (type(self), (self.stage, self.error, self.message))


class AssetError(Pseudo3DError):
    """A user-supplied asset (FLAME model, landmark embedding, DECA checkpoint) is missing or is
    not what was expected. The message names the file and what was expected of it."""
