"""A child process that runs ``prepare_vposer_datasets`` for the fault tests.

Usage: ``python fault_child.py '<job as JSON>'`` with the keys ``amass``, ``out``, ``splits``,
``config`` (PrepareConfig values) and optionally:

- ``wait``: import everything, print ``ready``, then wait for one line on stdin before
  starting, so that a test can time a kill from the start of the work, not of the imports;
- ``timing``: print every log message as ``T <seconds since start> <message>``;
- ``cli``: instead, run ``vposer_data.cli.main`` with these arguments (in a zygote's child);
- ``fsize``: a file-size limit in bytes (``RLIMIT_FSIZE``, with ``SIGXFSZ`` ignored, so that a
  write past it fails with ``EFBIG`` as on a full disk).

With ``{"zygote": true}`` it imports everything once, prints ``ready``, and then for each job
read from stdin (one JSON line with a ``fifo`` path) forks a child that leads its own process
group (so it dies with its DataLoader workers by one ``killpg``), prints the child's pid, and
the child writes its stdout and stderr to the fifo: a fresh run in a few milliseconds instead
of the seconds an interpreter takes to import torch.

The last line is ``RESULT <JSON>``: ``{"ok": true, "ran": [...]}`` or ``{"ok": false, "type":
..., "message": ...}``.
"""

from __future__ import annotations

import faulthandler
import json
import os
import resource
import signal
import sys
import time
from typing import Any


def run(job: dict[str, Any]) -> int:
    if "cli" in job:  # the command line, as `vposer-data <args>` would run it
        from vposer_data.cli import main as cli_main

        try:
            # a Ctrl-C pressed since the fork (held back until here) is raised now
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
            code = cli_main(job["cli"])
        except KeyboardInterrupt:  # before main's own handler (parsing the arguments)
            print("RESULT " + json.dumps({"ok": False, "rc": None}), flush=True)
            return 130
        print("RESULT " + json.dumps({"ok": code == 0, "rc": code}), flush=True)
        return code

    from vposer_data.config import PrepareConfig
    from vposer_data.prepare import prepare_vposer_datasets

    config = PrepareConfig(**job["config"])
    if job.get("fsize"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (job["fsize"], job["fsize"]))
    if job.get("wait"):
        print("ready", flush=True)
        sys.stdin.readline()
    start = time.monotonic()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})

    def logger(message: str) -> None:
        if job.get("timing"):
            print(f"T {time.monotonic() - start:.6f} {message}", flush=True)

    try:
        result = prepare_vposer_datasets(
            job["splits"], job["amass"], job["out"], logger=logger, config=config
        )
    except Exception as exc:
        outcome = {"ok": False, "type": type(exc).__name__, "message": str(exc)}
        print("RESULT " + json.dumps(outcome), flush=True)
        return 3
    print("RESULT " + json.dumps({"ok": True, "ran": result.ran}), flush=True)
    return 0


def zygote() -> int:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the children are reaped as they end
    print("ready", flush=True)
    for line in sys.stdin:
        job = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 1
            # a Ctrl-C to the new process group waits until the run can report it (``run``):
            # raised here, before stdout is the fifo, it would end the child without a RESULT
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            try:
                os.setsid()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # DataLoader waits for workers
                fifo = os.open(job["fifo"], os.O_WRONLY)
                os.dup2(fifo, 1)
                os.dup2(fifo, 2)
                os.close(fifo)
                # a run that does not end is asked for its threads' stacks (ForkedRun.result);
                # its worker processes inherit the handler
                faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)
                code = run(job)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        print(pid, flush=True)
    return 0


def main() -> int:
    job = json.loads(sys.argv[1])
    # import everything the run needs before "ready", so a timed kill measures the work
    import h5py  # noqa: F401
    import torch.utils.data  # noqa: F401

    import vposer_data.prepare  # noqa: F401

    return zygote() if job.get("zygote") else run(job)


if __name__ == "__main__":
    sys.exit(main())
