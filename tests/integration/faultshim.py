"""The fault-injection shim from the tests' side (tests/faultshim/faultshim.c).

    faults = Faults(tmp_path)            # a control file, empty: no faults
    g = Group(base, env=faults.env())    # every program runs with the shim
    faults.set("fsync eio events.log")   # from now on, fsyncs of the log fail
    faults.set("fsync pause events.log") # ... or block until cleared
    pid, path = faults.wait_paused()     # a process blocked in that call
    faults.clear()                       # every rule gone: paused calls go on

Rules are lines "OP ACTION [MATCH [COUNT]]" (see the top of faultshim.c).
A process re-reads the control file whenever it changes.
"""

import os
import time
from pathlib import Path

from conftest import build_dir

PAUSE_WAIT_S = 10.0


def shim_path():
    return build_dir() / "tests" / "libesbank_faultshim.so"


class Faults:
    def __init__(self, directory):
        self.ctl = Path(directory) / "faults.ctl"
        self.ctl.write_text("")

    def env(self):
        """The environment additions that load the shim and point it here.
        Sanitizer builds must be told that the shim comes before their
        runtime in the list of libraries, which is harmless here."""
        so = shim_path()
        assert so.exists(), "fault shim not built: %s" % so
        return {
            "LD_PRELOAD": str(so),
            "ESBANK_FAULT_FILE": str(self.ctl),
            "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0",
        }

    def set(self, *rules):
        """Replaces the rules (atomically: a process never reads half)."""
        tmp = self.ctl.with_name(self.ctl.name + ".tmp")
        tmp.write_text("".join(r + "\n" for r in rules))
        os.replace(tmp, self.ctl)

    def clear(self):
        self.set()

    def paused(self):
        """[(pid, path)] of the processes blocked by a pause rule now."""
        out = []
        for p in self.ctl.parent.glob(self.ctl.name + ".paused.*"):
            try:
                pid, path = p.read_text().split(None, 1)
                out.append((int(pid), path.strip()))
            except (OSError, ValueError):
                pass
        return out

    def wait_paused(self, timeout=PAUSE_WAIT_S):
        """The first (pid, path) blocked by a pause rule; fails on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.paused()
            if got:
                return got[0]
            time.sleep(0.01)
        raise TimeoutError("no process paused on %s within %.0f s"
                           % (self.ctl.read_text().strip(), timeout))
