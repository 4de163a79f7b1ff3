"""Start a data-parallel MXNet run: the scheduler, the servers and the workers of a dist_sync KVStore.

Usage: python -m tasks.launch -n 2 -- -m tasks.char_lm --backend mxnet --out runs/lm2
       python -m tasks.launch -n 4 -s 2 --hostfile hosts.txt -- -m tasks.char_lm --backend mxnet --out /shared/lm4

MXNet's conventions, as its tools/launch.py sets them: every process gets DMLC_ROLE (scheduler,
server or worker), DMLC_PS_ROOT_URI and DMLC_PS_ROOT_PORT (the scheduler's address),
DMLC_NUM_SERVER and DMLC_NUM_WORKER. The scheduler and the servers are `python -c "import
backends.mxnet"` (importing MXNet under those roles serves until the workers finish); each worker
runs `python ARGS...` (the arguments after --). Without --hostfile all run on this machine over
loopback; with it, the scheduler runs here and the servers and workers go round the listed hosts
(one per line) over ssh, which must reach them without a password and find this checkout and the
working directory at the same paths. The workers run in the directory the launcher was started in
(their relative paths, --out runs/x, mean what they say), with the checkout on PYTHONPATH.

Before any process starts, the worker's own command line is parsed here by its task's parser, so
that bad flags, a batch that does not split among the workers, a bad port, hostfile or
SEQCORE_DIST_TIMEOUT_S end in one sentence with nothing started. The launcher owns every process it
starts (seqcore.run.processes): one that fails ends the whole run with one sentence that names it,
the others are stopped at once, and the last checkpoint in --out resumes the run; on SIGINT or SIGTERM
the workers are sent SIGTERM, checkpoint and stop, then the scheduler and servers are stopped; if the
launcher dies without that chance (SIGKILL), the kernel kills them all. With -n 1 the command runs
alone, without a KVStore.

PyTorch runs use torchrun instead: torchrun --nproc-per-node 2 -m tasks.char_lm --backend torch ...
"""
from __future__ import annotations

import ast
import dataclasses
import json
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
from seqcore.parallel.distributed import check_environment, check_rows, timeout_s
from seqcore.run.folder import describe
from seqcore.run.processes import Owner
from seqcore.run.session import RunInterrupted

from .cli import PARSE_ONLY_ENV, Options, option, parse_options, run_main, split_at_dashes

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
    options = parse_options(LaunchOptions, "python -m tasks.launch", own, __doc__, command=tuple(command))
    timeout_s()  # SEQCORE_DIST_TIMEOUT_S, which every worker reads
    if options.hostfile:
        read_hosts(options.hostfile)
    return options


def check_worker(owner: Owner, command: Sequence[str], workers: int) -> None:
    """A dry parse of the worker's command line (`-m tasks.TASK FLAGS...`) by its task's own parser,
    in one process of its own that stops after parsing (PARSE_ONLY_ENV), before any worker starts: a
    bad flag is the task's one sentence, and the batch must split among the workers of an MXNet run.
    A command that is not a training task (no parse_config in its source) is left to the workers."""
    if len(command) < 2 or command[0] != "-m" or not _parses_a_config(command[1]):
        return
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DMLC_", "WORLD_SIZE", "RANK"))}
    parse = owner.run([sys.executable, *command], env={**env, "PYTHONPATH": path, PARSE_ONLY_ENV: "1"})
    out, err = parse.stdout, parse.stderr
    if owner.stopped:
        raise RunInterrupted(f"Stopped by {owner.signal_name} before any process of the run started.", owner.signum)
    if parse.returncode != 0:
        said = [line for line in err.splitlines() if line.startswith("error: ")]
        raise SeqcoreError(said[-1][len("error: "):] if said else
                           f"The worker's command line could not be parsed: {(err.strip().splitlines() or ['?'])[-1]}")
    try:
        config = json.loads(out.strip().splitlines()[-1])["config"]
    except (IndexError, ValueError, KeyError, TypeError):
        return  # it printed something else: the workers check for themselves
    if workers > 1:
        check_environment(config["backend"], {"DMLC_ROLE": "worker", "DMLC_PS_ROOT_URI": "-", "DMLC_PS_ROOT_PORT": "1",
                                              "DMLC_NUM_SERVER": "1", "DMLC_NUM_WORKER": str(workers)})
        check_rows(config["batch_size"], workers)


def _parses_a_config(module: str) -> bool:
    """Whether `module` is a task of this checkout whose command line goes through parse_config."""
    if not module.startswith("tasks."):
        return False
    name = module[len("tasks."):]
    source = ROOT / "tasks" / f"{name}.py"
    if not name.isidentifier() or not source.is_file():
        raise SeqcoreError(f"The worker's module {module} is not a task of this checkout (no {source}).")
    tree = ast.parse(source.read_text(encoding="utf-8"))
    return any(isinstance(node, ast.Call) and getattr(node.func, "id", None) == "parse_config"
               for node in ast.walk(tree))


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
        raise SeqcoreError(f"--hostfile {path} cannot be read ({describe(error)}).") from None
    except UnicodeDecodeError as error:
        raise SeqcoreError(f"--hostfile {path} is not UTF-8 text (byte {error.object[error.start]:#04x} at "
                           f"offset {error.start}); list one host name per line.") from None
    hosts = [line.split("#")[0].strip() for line in lines]
    hosts = [host for host in hosts if host]
    if not hosts:
        raise SeqcoreError(f"--hostfile {path} lists no host.")
    return hosts


class Process:
    """One started process, its name ('worker 1', 'server 0', 'scheduler') and its stderr relay."""

    def __init__(self, owner: Owner, name: str, argv: list[str], env: dict[str, str], host: Optional[str],
                 relay: "Relay", on_stop: Optional[str]):
        if host is not None:  # as MXNet's ssh launcher: the variables exported on the remote side
            exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items() if k.startswith("DMLC_") or
                               k == "PYTHONPATH")
            remote = f"cd {shlex.quote(os.getcwd())} && env {exports} {' '.join(map(shlex.quote, argv))}"
            argv, env = ["ssh", "-o", "StrictHostKeyChecking=no", "-o", "BatchMode=yes", host, remote], dict(os.environ)
            name = f"{name} on {host}"
        try:  # the peers of a dist_sync run are useless alone: the kernel kills them all with the launcher
            self.popen = owner.start(argv, env=env, stderr=subprocess.PIPE, text=True, death_signal=signal.SIGKILL,
                                     on_stop=on_stop)
        except OSError as error:
            raise SeqcoreError(f"Cannot start {name} ({describe(error)}); nothing of the run was kept "
                               f"running.") from None
        self.name = f"{name} (pid {self.popen.pid})"
        threading.Thread(target=relay.forward, args=(self.popen.stderr,), daemon=True).start()


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
        return self.said("error:")

    def said(self, prefix: str) -> bool:
        with self._lock:
            return any(line.startswith(prefix) for line in self._seen)


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"ended with exit status {code}"


def launch(args: LaunchOptions) -> int:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    worker = [sys.executable, *args.command]
    with Owner() as owner:
        check_worker(owner, args.command, args.num_workers)
        if args.num_workers == 1:  # alone: a stop or the launcher's death sends it SIGTERM (it checkpoints)
            child = owner.start(worker, env={**os.environ, "PYTHONPATH": path}, death_signal=signal.SIGTERM,
                                on_stop=signal.SIGTERM)
            code = owner.wait(child)
            return 128 - code if code < 0 else code
        hosts = read_hosts(args.hostfile) if args.hostfile else None
        port = free_port(args.host, args.port) if hosts is None or args.port == 0 else args.port
        base = {"DMLC_PS_ROOT_URI": args.host, "DMLC_PS_ROOT_PORT": str(port),
                "DMLC_NUM_SERVER": str(args.num_servers), "DMLC_NUM_WORKER": str(args.num_workers),
                "PYTHONPATH": path}
        relay = Relay()
        serve = [sys.executable, "-c", SERVE]
        env = lambda role: {**os.environ, **base, "DMLC_ROLE": role}  # noqa: E731
        host = lambda i: None if hosts is None else hosts[i % len(hosts)]  # noqa: E731
        # The scheduler and servers serve until the workers leave; a stop goes to the workers alone
        # (they agree on the step, checkpoint and leave through the servers).
        helpers = [Process(owner, "the scheduler", serve, env("scheduler"), None, relay, None)]
        workers: list[Process] = []
        for i in range(args.num_servers):
            if not owner.stopped:
                helpers.append(Process(owner, f"server {i}", serve, env("server"), host(i), relay, None))
        for i in range(args.num_workers):
            if not owner.stopped:
                workers.append(Process(owner, f"worker process {i}", worker, env("worker"), host(i), relay, signal.SIGTERM))
        return watch(owner, helpers, workers, relay)


def watch(owner: Owner, helpers: list[Process], workers: list[Process], relay: Relay) -> int:
    """Wait for the workers; the first process that fails stops them all."""
    while True:
        codes = [w.popen.poll() for w in workers]
        failed = next((w for w, code in zip(workers, codes) if code not in (None, 0)), None)
        if owner.stopped or (failed is not None and failed.popen.returncode in STOPPED):
            return finish(owner, workers, relay)  # a signal: every worker stops after the same step, rank 0
        if failed is not None:            # writes the checkpoint; let it, within a bound
            code = failed.popen.returncode
            time.sleep(POLL_S)  # the others' own sentences (the same bad input) come first
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


def finish(owner: Owner, workers: list[Process], relay: Relay) -> int:
    """After a stop: the workers' checkpoint within STOP_GRACE_S; 128 + the signal, as the workers'.
    The workers say where they stopped; a stop that came before they could is said here."""
    deadline = time.monotonic() + STOP_GRACE_S
    while time.monotonic() < deadline and any(w.popen.poll() is None for w in workers):
        time.sleep(POLL_S)
    time.sleep(POLL_S)  # the relays pass on the workers' last lines
    codes = [w.popen.poll() for w in workers]
    stopped = next((c for c in codes if c in STOPPED), None)
    code = 128 + owner.signum if owner.stopped else stopped if stopped is not None else max(c or 0 for c in codes)
    if not relay.said("stopped:"):
        name = signal.Signals(code - 128).name if code in STOPPED else "a signal"
        raise RunInterrupted(f"Stopped by {name} before the workers could say where (they were starting, or a "
                             f"second signal killed them); the last checkpoint in the run's folder, if any, "
                             f"resumes it.", code - 128 if code in STOPPED else signal.SIGTERM)
    return code


def main(argv: Optional[Sequence[str]] = None) -> int:
    return launch(parse(argv))


if __name__ == "__main__":
    run_main(main)
