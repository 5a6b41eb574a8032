"""Typed errors raised deep in the stages; `cli.py` alone turns them into one line and an exit code."""


class EdgePruneError(Exception):
    """Base of every error the user should see as one line (never a traceback)."""

    exit_code = 1


class InternalError(EdgePruneError):
    """Our own stages failed on something they built (a runtime refusing our pruned model):
    a bug to report, exit 1, never blamed on the user's input."""

    exit_code = 1


class UsageError(EdgePruneError):
    """Bad input or usage: names the file, node or flag. Nothing partial is written."""

    exit_code = 2


class InfeasibleBudget(EdgePruneError):
    """The budget cannot be met on this device; the message gives the smallest reachable value."""

    exit_code = 3


class GateFailed(EdgePruneError):
    """The artifact was built but a release gate failed; names the gate and the measured value."""

    exit_code = 4


class DeviceError(EdgePruneError):
    """The device is unreachable, disconnected or timed out; progress is kept for --resume."""

    exit_code = 5


def first_line(e: BaseException) -> str:
    """An exception's message as one line for an error text (its type when it says nothing)."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
