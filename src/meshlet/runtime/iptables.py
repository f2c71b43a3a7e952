"""Applying rendered rule sets inside a network namespace.

``iptables-restore`` replaces every table present in its input in one step, so a
namespace never shows half a rule set; it runs in the namespace through
``nsenter --net=<namespace file>``. The rule sets themselves are pure text from
``meshlet.runtime.services`` (the node's Service NAT) and ``meshlet.runtime.capture``
(a pod's sidecar capture).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from meshlet.runtime._commands import run
from meshlet.runtime.capture import CaptureConfig, render_capture_table
from meshlet.runtime.services import ServicePortRules, render_service_tables

__all__ = ["apply_capture_rules", "apply_service_rules", "restore_tables", "save_tables"]


def restore_tables(netns: str | Path, rules: str) -> None:
    """Load ``rules`` (``iptables-restore`` input) into the namespace at ``netns``."""
    run(["nsenter", f"--net={netns}", "iptables-restore", "--wait=10"], input=rules)


def save_tables(netns: str | Path, table: str | None = None) -> str:
    """``iptables-save`` (of one table, when named) inside the namespace at ``netns``."""
    argv = ["nsenter", f"--net={netns}", "iptables-save"]
    if table is not None:
        argv += ["-t", table]
    return run(argv).stdout


def apply_service_rules(node_netns: str | Path, services: Iterable[ServicePortRules]) -> str:
    """Make the node's Service NAT exactly ``services``; returns the rules applied."""
    rules = render_service_tables(services)
    restore_tables(node_netns, rules)
    return rules


def apply_capture_rules(pod_netns: str | Path, config: CaptureConfig | None = None) -> str:
    """Install the sidecar's capture in a pod (before its app starts); returns the rules."""
    rules = render_capture_table(config)
    restore_tables(pod_netns, rules)
    return rules
