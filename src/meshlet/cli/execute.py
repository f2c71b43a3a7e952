"""``meshlet exec [-i] [-t] [-c C] POD|TYPE/NAME -- COMMAND…``: kubectl's exec.

The cluster says which process is the container (``locate``); the command then runs
in that container's network and mount namespaces, with its environment
(``meshlet.runtime.container.exec_in_container``), and this process's stdout and
stderr passed straight through (stdin too with ``-i``; the terminal with ``-t``).
The command's exit code is meshlet's, and when it is not 0 kubectl's line
``command terminated with exit code N`` follows on stderr.

Flags may come before or after the pod, as kubectl allows; everything after ``--``
is the command.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import dataclass

from meshlet.cli import _cluster, _pods
from meshlet.cli._common import add_namespace_flag, namespace_of
from meshlet.kubectl.messages import KubectlError, exec_exit_code
from meshlet.runtime import container as runtime

__all__ = ["ExecArgs", "parse_exec_args", "register", "run"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "exec",
        help="run a command in a container",
        description=__doc__,
        allow_abbrev=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-i", "--stdin", action="store_true", help="pass stdin to the command")
    parser.add_argument("-t", "--tty", action="store_true", help="stdin is a terminal")
    parser.add_argument("-c", "--container", help="the container (default: the pod's default)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only the command's output")
    add_namespace_flag(parser)
    parser.add_argument("rest", nargs=argparse.REMAINDER, metavar="POD [--] COMMAND…")
    parser.set_defaults(run=run)


@dataclass(frozen=True, slots=True)
class ExecArgs:
    pod: str
    command: tuple[str, ...]
    container: str | None = None
    stdin: bool = False
    tty: bool = False
    quiet: bool = False
    namespace: str | None = None


_VALUE_FLAGS = {"-c": "container", "--container": "container", "-n": "namespace"}
_VALUE_FLAGS["--namespace"] = "namespace"


def parse_exec_args(
    rest: list[str],
    *,
    container: str | None = None,
    stdin: bool = False,
    tty: bool = False,
    quiet: bool = False,
    namespace: str | None = None,
) -> ExecArgs:
    """The pod, the command and the flags given after the pod (``rest`` is everything
    from the first argument that was not a flag on)."""
    values: dict[str, str | None] = {"container": container, "namespace": namespace}
    switches = {"stdin": stdin, "tty": tty, "quiet": quiet}
    pod: str | None = None
    command: list[str] = []
    index = 0
    while index < len(rest):
        arg = rest[index]
        index += 1
        if arg == "--":
            command = rest[index:]
            break
        if pod is not None and not arg.startswith("-"):
            # kubectl's old form, without "--": the rest is the command
            command = rest[index - 1 :]
            break
        if not arg.startswith("-") or arg == "-":
            pod = arg
            continue
        name, has_value, value = arg.partition("=")
        if name in _VALUE_FLAGS:
            if not has_value:
                if index >= len(rest):
                    raise KubectlError(f"flag needs an argument: {name}")
                value = rest[index]
                index += 1
            values[_VALUE_FLAGS[name]] = value
        elif name in ("--stdin", "--tty", "--quiet"):
            switches[name[2:]] = True
        elif arg.startswith("-c") and len(arg) > 2:
            values["container"] = arg[2:]
        elif arg.startswith("-n") and len(arg) > 2:
            values["namespace"] = arg[2:]
        elif not arg.startswith("--") and set(arg[1:]) <= {"i", "t", "q"}:
            switches["stdin"] |= "i" in arg
            switches["tty"] |= "t" in arg
            switches["quiet"] |= "q" in arg
        else:
            raise KubectlError(f"unknown shorthand flag: {arg!r} in {arg}")
    if pod is None:
        raise KubectlError(
            "exec [POD] [COMMAND] is not supported anymore. Use exec [POD] -- [COMMAND] instead"
        )
    if not command:
        raise KubectlError("you must specify at least one command for the container")
    return ExecArgs(
        pod=pod,
        command=tuple(command),
        container=values["container"],
        stdin=switches["stdin"],
        tty=switches["tty"],
        quiet=switches["quiet"],
        namespace=values["namespace"],
    )


@_cluster.server_errors
def run(args: argparse.Namespace) -> int:
    parsed = parse_exec_args(
        list(args.rest),
        container=args.container,
        stdin=args.stdin,
        tty=args.tty,
        quiet=args.quiet,
        namespace=getattr(args, "namespace", None),
    )
    namespace = parsed.namespace or namespace_of(args)
    client = _cluster.open_client()
    pod = _pods.find_pod(client, namespace, parsed.pod)
    pod_name = str(pod["metadata"]["name"])
    chosen = _pods.default_container(pod, parsed.container, quiet=parsed.quiet)
    located = client.locate(namespace, pod_name, chosen)
    sys.stdout.flush()
    sys.stderr.flush()
    code = runtime.exec_in_container(
        int(located["pid"]),
        parsed.command,
        stdin=None if parsed.stdin else subprocess.DEVNULL,
    )
    if code < 0:  # killed by a signal: the shell's convention, as kubectl reports it
        code = 128 - code
    if code != 0:
        print(exec_exit_code(code), file=sys.stderr)
    return code
