"""scripts/daemonize, which scripts/container-engine starts the podman service with: a service started
inside `eval "$(scripts/container-engine)"` must not keep that substitution's pipe, or the caller waits for
ever (CI hung 90 minutes that way). Asserted on descriptors, not on time: after the script has exited, no
process may hold the write end of the pipe it printed to."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import REPO

DAEMONIZE = REPO / "scripts" / "daemonize"


def _holders(inode: int) -> set[int]:
    """Pids of processes with a descriptor on pipe `inode`."""
    holders = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            links = [os.readlink(fd) for fd in (proc / "fd").iterdir()]
        except OSError:  # gone, or not ours to read
            continue
        if f"pipe:[{inode}]" in links:
            holders.add(int(proc.name))
    return holders


@pytest.fixture
def started(tmp_path: Path) -> Iterator[tuple[int, set[int], Path]]:
    """Runs daemonize with a pipe as stdout and an extra inherited descriptor (as `$(...)` under a CI
    harness would), from a folder of its own. Yields the service's pid, the processes still holding that
    pipe once daemonize has exited (`$(...)` waits for them all), and the log; stops the service after."""
    log = tmp_path / "service.log"
    read_end, write_end = os.pipe()
    extra_read, extra_write = os.pipe()
    inode = os.fstat(write_end).st_ino
    pid = 0
    try:
        with (tmp_path / "stderr").open("w+") as stderr:  # a file: a pipe would be waited for, as stdout
            done = subprocess.run(
                [str(DAEMONIZE), str(log), "sh", "-c", "echo started; pwd; exec sleep 600"],
                stdout=write_end,
                stderr=stderr,
                pass_fds=(extra_write,),
                cwd=tmp_path,
                check=False,
                timeout=60,
            )
        os.close(write_end)
        os.close(extra_write)
        assert done.returncode == 0, (tmp_path / "stderr").read_text()
        holders = _holders(inode) - {os.getpid()}  # we hold the read end
        os.set_blocking(read_end, False)  # what it printed is in the pipe already; never wait for EOF
        pid = int(os.read(read_end, 4096).decode().strip())
        for _ in range(3000):  # until the shell has written its two lines (and is becoming `sleep`)
            if len(log.read_text().splitlines()) == 2:
                break
            time.sleep(0.01)
        yield pid, holders, log
    finally:
        os.close(read_end)
        os.close(extra_read)
        if pid:
            os.kill(pid, signal.SIGTERM)


def test_the_service_keeps_none_of_its_callers_descriptors(started: tuple[int, set[int], Path]) -> None:
    pid, holders, _ = started
    assert holders == set(), "the caller's stdout pipe is still held: `$(scripts/daemonize ...)` never returns"
    assert sorted(fd.name for fd in Path(f"/proc/{pid}/fd").iterdir()) == ["0", "1", "2"]


def test_the_service_runs_from_root_in_a_session_of_its_own(started: tuple[int, set[int], Path]) -> None:
    pid, _, log = started
    assert os.readlink(f"/proc/{pid}/cwd") == "/"
    assert os.getsid(pid) == pid and os.getsid(pid) != os.getsid(0)
    assert os.readlink(f"/proc/{pid}/fd/0") == "/dev/null"
    assert os.readlink(f"/proc/{pid}/fd/1") == os.readlink(f"/proc/{pid}/fd/2") == str(log)
    assert log.read_text().splitlines() == ["started", "/"]


def test_an_unwritable_log_fails_in_the_caller(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(DAEMONIZE), str(tmp_path / "missing" / "service.log"), "true"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode != 0 and done.stdout == ""
