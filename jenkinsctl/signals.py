"""SIGTERM and SIGINT as an exception at a point where it can be handled.

Jenkins aborts a build with SIGTERM; Python's default then ends the process
on the spot, in the middle of whatever `apply` was creating.  Inside
``interruptible()`` the first signal raises ``Signalled`` in the main
thread instead, so the code in progress can finish or undo its resource in
its ``finally``/``except BaseException`` blocks, and a second signal during
that clean-up is ignored rather than cutting it short.  ``Signalled`` is a
BaseException, like KeyboardInterrupt, because the handler may fire inside
any ``except Exception`` (logging's own emit swallows those); it becomes
the CLI's ``Interrupted`` error when it leaves ``interruptible()``.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

from jenkinsctl.errors import Interrupted

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Signalled(BaseException):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield   # handlers can only be set from the main thread
        return
    raised = False

    def handler(signum, frame):  # noqa: ARG001
        nonlocal raised
        if raised:
            return   # already unwinding: let the clean-up finish
        raised = True
        raise Signalled(signum)

    previous = {s: signal.signal(s, handler) for s in SIGNALS}
    try:
        yield
    except Signalled as exc:
        raise Interrupted(exc.signum) from None
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
