"""Exceptions a user can act on. The env turns them into observations, the CLI into one line."""

from __future__ import annotations


class CurbenchError(Exception):
    """Base class for every error curbench raises on purpose."""


class TaskUnavailable(CurbenchError):
    """A task cannot start on this machine: a GPU, weights or data are missing.

    The message names what is missing and how to provide it.
    """


class SubmissionError(CurbenchError):
    """A submission was refused before training (bad format, unknown id, over budget, leak...).

    The iteration is not spent and the episode goes on.
    """

    def __init__(self, message: str, *, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


class LeakageError(SubmissionError):
    """A submission contains evaluation data (contamination control)."""

    def __init__(self, message: str, *, leaked_ids: list[str]) -> None:
        super().__init__(message)  # the ids stay with the harness: naming them would be an oracle
        self.leaked_ids = leaked_ids


class PipelineError(CurbenchError):
    """Training or evaluation crashed. The run directory keeps the logs."""


class WorkspaceError(CurbenchError):
    """The sandbox could not be created or has died."""
