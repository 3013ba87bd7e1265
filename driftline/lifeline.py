"""Children that end with their parent: ``python -m driftline.lifeline PARENT_PID -- COMMAND [ARG...]``.

On Linux the wrapper asks the kernel for SIGTERM when its parent ends (``prctl(PR_SET_PDEATHSIG)``),
however the parent ends (SIGKILL and the OOM killer included), checks that the parent is still
``PARENT_PID`` (had it ended between the ``fork`` and the ``prctl``, nobody would send the signal), then
``exec``\\s the command: the command keeps the wrapper's PID and the death signal (it is kept across
``execve``, except for set-user-ID programs). ``bentoml serve`` answers SIGTERM by stopping its workers;
the scheduler ends on it.

Why a wrapper and not ``preexec_fn``: ``preexec_fn`` runs Python between ``fork`` and ``exec`` in a copy
of the parent, which may hold locks of other threads (the replay and the benchmarks run threads), and
Python documents that it may deadlock there. The wrapper costs one small interpreter start per child.

Not covered:
- systems other than Linux (macOS, the BSDs, Windows have no parent-death signal): there the wrapper only
  runs the command, and a ``driftline up`` killed with SIGKILL leaves the service and the scheduler
  running; stop them (``kill`` their PIDs) before starting again;
- the death signal follows the parent *thread*: start children from a thread that lives as long as them
  (``driftline up``, the replay and the benchmarks start them from the main thread);
- grandchildren are the children's business: BentoML's workers end because the ``bentoml serve`` arbiter
  stops them on SIGTERM; a retraining run the scheduler started goes on to its end, as it does when the
  scheduler stops cleanly.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Sequence

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
EXIT_PARENT_GONE = 1
EXIT_NOT_FOUND = 127


def wrap(command: Sequence[str]) -> list[str]:
    """``command`` run through this wrapper, tied to the calling process (and thread)."""
    return [sys.executable, "-m", "driftline.lifeline", str(os.getpid()), "--", *command]


def tie_to_parent(parent: int, sig: signal.Signals = signal.SIGTERM) -> bool:
    """Ask for ``sig`` when the parent ends; False if the parent is no longer ``parent``. A no-op (True)
    off Linux."""
    if not sys.platform.startswith("linux"):
        return True
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_PDEATHSIG, {sig.name}) failed: {os.strerror(err)}")
    return os.getppid() == parent


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 3 or args[1] != "--" or not args[0].isdigit():
        sys.exit("usage: python -m driftline.lifeline PARENT_PID -- COMMAND [ARG...]")
    parent, command = int(args[0]), args[2:]
    if not tie_to_parent(parent):
        sys.stderr.write(f"lifeline: parent {parent} ended before {command[0]} started; not starting it\n")
        sys.exit(EXIT_PARENT_GONE)
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        sys.stderr.write(f"lifeline: cannot run {command[0]}: {exc.strerror}\n")
        sys.exit(EXIT_NOT_FOUND)


if __name__ == "__main__":
    main()
