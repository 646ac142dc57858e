"""The fault tests' own diagnosis: a run whose output does not end fails its test within the
deadline, with the stacks of its processes, instead of hanging until pytest's timeout."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from fault_helpers import ForkedRun

STUCK = textwrap.dedent(
    """
    import faulthandler, signal, sys, threading, time
    faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)
    print("started", flush=True)
    def waiting_in_a_thread():
        time.sleep(3600)
    threading.Thread(target=waiting_in_a_thread, daemon=True).start()
    time.sleep(3600)
    """
)


@pytest.mark.timeout(120)
def test_a_run_that_does_not_end_fails_with_its_stacks() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", STUCK],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # the leader of its own process group, as a forked run is
    )
    assert proc.stdout is not None
    run = ForkedRun(proc.pid, proc.stdout)
    with pytest.raises(AssertionError, match="output not ended") as failed:
        run.result(timeout=3)
    message = str(failed.value)
    assert "started" in message  # the output so far
    assert "waiting_in_a_thread" in message  # every thread's stack
    assert proc.wait(timeout=30) < 0  # and the run was killed
