"""Start a data-parallel MXNet run: the scheduler, the servers and the workers of a dist_sync KVStore.

Usage: python -m tasks.launch -n 2 -- -m tasks.char_lm --backend mxnet --out runs/lm2
       python -m tasks.launch -n 4 -s 2 --hostfile hosts.txt -- -m tasks.char_lm --backend mxnet --out /shared/lm4

MXNet's conventions, as its tools/launch.py sets them: every process gets DMLC_ROLE (scheduler,
server or worker), DMLC_PS_ROOT_URI and DMLC_PS_ROOT_PORT (the scheduler's address),
DMLC_NUM_SERVER and DMLC_NUM_WORKER. The scheduler and the servers are `python -c "import
backends.mxnet"` (importing MXNet under those roles serves until the workers finish); each worker
runs `python ARGS...` (the arguments after --). Without --hostfile all run on this machine over
loopback; with it, the scheduler runs here and the servers and workers go round the listed hosts
(one per line) over ssh, which must reach them without a password and find this checkout at the same
path. The launcher watches every process: one that fails ends the whole run with one sentence that
names it, the others are stopped at once, and the last checkpoint in --out resumes the run. With
-n 1 the command runs alone, without a KVStore.

PyTorch runs use torchrun instead: torchrun --nproc-per-node 2 -m tasks.char_lm --backend torch ...
"""
from __future__ import annotations

import dataclasses
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Optional, Sequence

from seqcore.errors import ConfigError, SeqcoreError

from .cli import Options, option, parse_options, run_main, split_at_dashes

SERVE = "import backends.mxnet"  # a scheduler or server serves inside `import mxnet`, then exits
POLL_S = 0.2
SERVER_GRACE_S = 10.0  # after the workers finish, the servers and scheduler get this long to leave
STOP_GRACE_S = 120.0  # after a stop by a signal, the workers get this long to write their checkpoint
STOPPED = (128 + signal.SIGINT, 128 + signal.SIGTERM)  # a worker's exit status after such a stop
ROOT = Path(__file__).resolve().parent.parent
SENTENCES = ("error:", "stopped:", "SIGINT:", "SIGTERM:")  # what every worker says alike, shown once


@dataclasses.dataclass(frozen=True)
class LaunchOptions(Options):
    num_workers: Optional[int] = option(None, "worker processes", group="processes", required=True,
                                        check="positive", aliases=("-n",))
    num_servers: Optional[int] = option(None, "server processes", group="processes", check="positive",
                                        aliases=("-s",), shown="as many as workers")
    hostfile: Optional[str] = option(None, "hosts for the servers and workers, one per line (ssh)",
                                     group="processes", metavar="FILE")
    host: str = option("127.0.0.1", "the scheduler's address as the others reach it (with --hostfile give "
                       "this machine's name or address)", group="processes")
    port: int = option(0, "the scheduler's port; 0: a free one", group="processes", check="non_negative")
    command: tuple[str, ...] = option((), "the worker's python arguments, after --", command_line=False)

    def __post_init__(self) -> None:
        if not self.command:
            raise ConfigError("Give the worker's command after --, e.g. -- -m tasks.char_lm --backend mxnet.")
        super().__post_init__()
        if self.num_servers is None:
            object.__setattr__(self, "num_servers", self.num_workers)
        if self.port > 65535:
            raise ConfigError(f"--port must be in 0..65535, got {self.port}.")


def parse(argv: Optional[Sequence[str]]) -> LaunchOptions:
    own, command = split_at_dashes(argv)
    return parse_options(LaunchOptions, "python -m tasks.launch", own, __doc__, command=tuple(command))


def free_port(host: str, port: int) -> int:
    """`port` if this machine can listen on it (0: any free one), else one sentence."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("" if host in ("127.0.0.1", "localhost") else host, port))
        except OSError as error:
            raise SeqcoreError(f"The scheduler cannot listen on {host}:{port} ({error.strerror or error}); "
                               f"pick another --port.") from None
        return probe.getsockname()[1]


def read_hosts(path: str) -> list[str]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise SeqcoreError(f"--hostfile {path} cannot be read ({error.strerror or error}).") from None
    hosts = [line.split("#")[0].strip() for line in lines]
    hosts = [host for host in hosts if host]
    if not hosts:
        raise SeqcoreError(f"--hostfile {path} lists no host.")
    return hosts


class Process:
    """One started process, its name ('worker 1', 'server 0', 'scheduler') and its stderr relay."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], host: Optional[str], relay: "Relay"):
        self.name = name
        if host is not None:  # as MXNet's ssh launcher: the variables exported on the remote side
            exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items() if k.startswith("DMLC_"))
            remote = f"cd {shlex.quote(str(ROOT))} && env {exports} {' '.join(map(shlex.quote, argv))}"
            argv, env = ["ssh", "-o", "StrictHostKeyChecking=no", "-o", "BatchMode=yes", host, remote], dict(os.environ)
            name = f"{name} on {host}"
        self.popen = subprocess.Popen(argv, env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True,
                                      start_new_session=True)  # our signals reach it only through us
        self.name = f"{name} (pid {self.popen.pid})"
        threading.Thread(target=relay.forward, args=(self.popen.stderr,), daemon=True).start()

    def stop(self) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class Relay:
    """Every process's stderr to ours, a line at a time; a sentence that several workers print alike
    (the same bad input, the same stop) is shown once."""

    def __init__(self):
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def forward(self, stream) -> None:
        for line in stream:
            with self._lock:
                if line.startswith(SENTENCES):
                    if line in self._seen:
                        continue
                    self._seen.add(line)
                sys.stderr.write(line)
                sys.stderr.flush()

    def said_error(self) -> bool:
        with self._lock:
            return any(line.startswith("error:") for line in self._seen)


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"ended with exit status {code}"


def launch(args: LaunchOptions) -> int:
    worker = [sys.executable, *args.command]
    if args.num_workers == 1:
        return subprocess.call(worker, cwd=ROOT)
    hosts = read_hosts(args.hostfile) if args.hostfile else None
    port = free_port(args.host, args.port) if hosts is None or args.port == 0 else args.port
    base = {"DMLC_PS_ROOT_URI": args.host, "DMLC_PS_ROOT_PORT": str(port),
            "DMLC_NUM_SERVER": str(args.num_servers), "DMLC_NUM_WORKER": str(args.num_workers),
            "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    relay = Relay()
    serve = [sys.executable, "-c", SERVE]
    env = lambda role: {**os.environ, **base, "DMLC_ROLE": role}  # noqa: E731
    host = lambda i: None if hosts is None else hosts[i % len(hosts)]  # noqa: E731
    helpers = [Process("the scheduler", serve, env("scheduler"), None, relay)]
    helpers += [Process(f"server {i}", serve, env("server"), host(i), relay) for i in range(args.num_servers)]
    workers = [Process(f"worker process {i}", worker, env("worker"), host(i), relay) for i in range(args.num_workers)]
    stopping = []
    for signum in (signal.SIGINT, signal.SIGTERM):  # pass a stop on to the workers: they checkpoint and stop
        signal.signal(signum, lambda number, frame: (stopping.append(number), [
            os.killpg(w.popen.pid, signal.SIGTERM) for w in workers if w.popen.poll() is None]))
    try:
        return watch(helpers, workers, relay, stopping)
    finally:
        for process in helpers + workers:
            process.stop()


def watch(helpers: list[Process], workers: list[Process], relay: Relay, stopping: list[int]) -> int:
    """Wait for the workers; the first process that fails stops them all."""
    while True:
        codes = [w.popen.poll() for w in workers]
        failed = next((w for w, code in zip(workers, codes) if code not in (None, 0)), None)
        if failed is not None:
            code = failed.popen.returncode
            time.sleep(POLL_S)  # the others' own sentences (the same bad input) come first
            if stopping or code in STOPPED:  # a signal: every worker stops after the same step, rank 0
                return finish(workers, code)   # writes the checkpoint; let it, within a bound
            if code == 2 and relay.said_error():  # bad input: the worker said why in one sentence
                return 2
            print(f"error: {failed.name} {describe_exit(code)}; the run was stopped, and its last "
                  f"checkpoint resumes it (the same command with --resume).", file=sys.stderr)
            return 1
        if all(code == 0 for code in codes):
            deadline = time.monotonic() + SERVER_GRACE_S
            while time.monotonic() < deadline and any(h.popen.poll() is None for h in helpers):
                time.sleep(POLL_S)
            return 0
        gone = next((h for h in helpers if h.popen.poll() not in (None, 0)), None)  # 0: told to stop
        if gone is not None:
            print(f"error: {gone.name} {describe_exit(gone.popen.returncode)} while the workers were "
                  f"training; the run was stopped, and its last checkpoint resumes it.", file=sys.stderr)
            return 1
        time.sleep(POLL_S)


def finish(workers: list[Process], code: int) -> int:
    deadline = time.monotonic() + STOP_GRACE_S
    while time.monotonic() < deadline and any(w.popen.poll() is None for w in workers):
        time.sleep(POLL_S)
    return max([code, *(w.popen.returncode or 0 for w in workers)])


def main(argv: Optional[Sequence[str]] = None) -> int:
    return launch(parse(argv))


if __name__ == "__main__":
    run_main(main)
