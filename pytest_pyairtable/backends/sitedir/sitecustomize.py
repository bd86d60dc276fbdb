"""Run by a host-run Python service's interpreter at start-up, when the test run measures
coverage (pytest-pyairtable puts this directory first on the service's PYTHONPATH):

1. starts coverage.py from ``COVERAGE_PROCESS_CONFIG``, as coverage's own ``.pth`` file
   does where the interpreter's site directories hold one (then this does nothing more:
   coverage starts once per process), and says so in the service's log when it cannot;
2. saves the data when the service's stop signal comes (SIGTERM or another; not SIGINT,
   whose KeyboardInterrupt exits normally), once even if the signal comes twice;
3. runs the ``sitecustomize`` this one hides, if another directory on the path has one.

It runs inside the service, in whatever interpreter that is: it imports nothing of
pytest_pyairtable and never fails the service's start-up on coverage's account.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType
from typing import Any

_CONFIG_VAR = "COVERAGE_PROCESS_CONFIG"
_STOP_SIGNAL_VAR = "PYAIRTABLE_COVERAGE_STOP_SIGNAL"
# SIGINT raises KeyboardInterrupt, and the interpreter exits normally: coverage saves at
# exit. SIGKILL and SIGSTOP cannot be handled.
_LEFT_ALONE = ("SIGINT", "SIGKILL", "SIGSTOP")


def _say(text: str) -> None:
    sys.stderr.write(f"pytest-pyairtable: {text}\n")


def _start_coverage() -> Any:
    """The started Coverage, or None."""
    if not os.environ.get(_CONFIG_VAR):
        return None
    try:
        import coverage
    except ImportError:
        _say(
            f"coverage is not installed for {sys.executable}, so this process is not "
            "measured. Fix: install coverage>=7.10 where the service runs."
        )
        return None
    coverage.process_startup()  # a no-op where coverage's .pth file started it already
    cov = coverage.Coverage.current()
    if cov is None:
        _say(
            f"coverage {coverage.__version__} for {sys.executable} does not read "
            f"{_CONFIG_VAR} (7.10 and later do), so this process is not measured. "
            "Fix: install coverage>=7.10 where the service runs."
        )
    return cov


def _save_on_stop_signal(cov: Any) -> None:
    """Save the data before the service's stop signal ends the process, where nothing
    else would let it exit normally: over the default action, or over coverage's own
    SIGTERM handler, which a second SIGTERM enters again while it saves (and breaks the
    file). A handler of the service's own is left alone: it exits, coverage saves then."""
    name = os.environ.get(_STOP_SIGNAL_VAR, "")
    sig = getattr(signal, name, None) if name.startswith("SIG") else None
    if not isinstance(sig, signal.Signals) or name in _LEFT_ALONE:
        return
    current = signal.getsignal(sig)
    if current is not signal.SIG_DFL and getattr(current, "__self__", None) is not cov:
        return
    saving: list[int] = []

    def save_then_stop(signum: int, frame: FrameType | None) -> None:
        if saving:  # the same signal again, while the first one's save goes on
            return
        saving.append(signum)
        signal.signal(signum, signal.SIG_IGN)
        try:
            cov.stop()
            cov.save()
        finally:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)  # ends as the signal would have ended it

    signal.signal(sig, save_then_stop)


def _chain() -> None:
    """Run the sitecustomize further down the path, as if this one were not there."""
    import importlib.machinery
    import importlib.util

    here = os.path.realpath(os.path.dirname(os.path.abspath(__file__)))
    rest = [p for p in sys.path if os.path.realpath(os.path.abspath(p or os.curdir)) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None or spec.origin is None:
        return
    if os.path.realpath(spec.origin) == os.path.realpath(__file__):
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module  # what `import sitecustomize` finds from now on
    spec.loader.exec_module(module)


def _main() -> None:
    try:
        cov = _start_coverage()
        if cov is not None:
            _save_on_stop_signal(cov)
    except Exception as exc:  # never the reason a service does not start
        _say(f"coverage could not start in this process: {exc!r}")
    _chain()


_main()
