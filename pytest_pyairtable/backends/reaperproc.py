"""The reaper's process (see reaper.py): run as a script, ``python -I -S <this file>
<dir holding pytest_pyairtable>``, with the commands on stdin.

It starts while the first service does, on the same cores. Until pytest is gone it
only collects its commands, so it imports nothing beyond the interpreter's own start-up:
without ``site`` and our package that costs ~10 ms of CPU, not ~55 ms (a service ready
0.5 s after it starts was seen 14 ms later beside the full start-up). The reaping, and
its imports, happen only at end-of-file.
"""

import os
import signal
import sys


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is pytest's to handle
    commands = []
    for raw in sys.stdin.buffer:  # as the client wrote it: UTF-8, whatever the locale
        line = raw.decode()
        if line.rstrip("\n") == "done":
            os._exit(0)  # nothing to flush: spare pytest's close the interpreter's shutdown
        commands.append(line)
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):  # -I ignored it; the user's wish holds
        sys.dont_write_bytecode = True
    if len(sys.argv) > 1:  # else started as a module: the package is importable already
        sys.path.append(sys.argv[1])  # after the standard library: nothing there shadows it
    from pytest_pyairtable.backends.reaper import reap_commands

    return reap_commands(commands)


if __name__ == "__main__":
    sys.exit(main())
