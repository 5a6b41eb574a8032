"""Running the programs that reach devices (adb, ssh): argument lists, timeouts, retries.

Every call goes through `run`: the command is an argument list (never a shell string, so a
serial or host name is passed verbatim), it has a timeout, and failures the transport calls
transient (a phone briefly offline, an ssh connection reset) are retried with exponential
backoff. What is still failing after the last attempt becomes a `DeviceError` (exit 5).
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from ..errors import DeviceError


@dataclass(frozen=True)
class Retry:
    attempts: int = 3
    first_delay_s: float = 0.5
    factor: float = 2.0
    max_delay_s: float = 8.0

    def delays(self):
        """The pauses between attempts: first, first*factor, ... capped at max."""
        delay = self.first_delay_s
        for _ in range(self.attempts - 1):
            yield min(delay, self.max_delay_s)
            delay *= self.factor

    @classmethod
    def from_env(cls) -> "Retry":
        """EDGEPRUNE_RETRIES / EDGEPRUNE_RETRY_DELAY override the defaults (CI on a flaky
        USB hub wants more patience; tests want less)."""
        attempts = _env_number("EDGEPRUNE_RETRIES", int, cls.attempts)
        delay = _env_number("EDGEPRUNE_RETRY_DELAY", float, cls.first_delay_s)
        return cls(attempts=max(1, attempts), first_delay_s=max(0.0, delay))


def _env_number(name: str, kind, default):
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return kind(raw)
    except ValueError:
        raise DeviceError(f"{name}={raw!r} is not a number") from None


@dataclass
class Completed:
    args: list[str]
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def last_error_line(self) -> str:
        """The last non-empty stderr line: what the tool itself said went wrong."""
        lines = [ln.strip() for ln in self.stderr.decode(errors="replace").splitlines() if ln.strip()]
        return lines[-1] if lines else f"exit status {self.returncode}"


# Decides whether a finished call failed in a way worth retrying.
Transient = Callable[[Completed], bool]


def run(args: Sequence[str], *, what: str, timeout: float, transient: Transient,
        input: bytes | None = None, check: bool = True, retry: Retry | None = None) -> Completed:
    """Run `args` (a list), retrying transient failures with backoff.

    `what` names the device for error messages ("adb:emulator-5554"). A call that times out
    is treated as transient (the link may have stalled); a non-transient failure is returned
    as is when `check` is false, else raised as DeviceError.
    """
    args = [os.fspath(a) for a in args]
    retry = retry or Retry.from_env()
    delays = list(retry.delays())
    attempt = 0
    while True:
        try:
            proc = subprocess.run(args, input=input, capture_output=True, timeout=timeout,
                                  stdin=None if input is not None else subprocess.DEVNULL)
            done = Completed(args, proc.returncode, proc.stdout, proc.stderr)
            failure = None if done.returncode == 0 else done.last_error_line
            retryable = done.returncode != 0 and transient(done)
        except FileNotFoundError:
            raise DeviceError(f"{what}: '{args[0]}' is not installed (not found on PATH)") from None
        except subprocess.TimeoutExpired:
            done, failure, retryable = None, f"{os.path.basename(args[0])} timed out after {timeout:g}s", True

        if failure is None:
            return done
        if not retryable:
            if check:
                raise DeviceError(f"{what}: {failure}")
            return done
        if attempt >= len(delays):
            raise DeviceError(f"{what}: {failure} (after {retry.attempts} attempts)")
        time.sleep(delays[attempt])
        attempt += 1

