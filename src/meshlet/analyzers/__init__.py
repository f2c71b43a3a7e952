"""``meshlet analyze``'s analyzers: the mistakes users of this mesh really make.

Theory of operation. Validation (``meshlet.resources.validation``) looks at one
object at a time; the analyzers look at all of them together. Each analyzer is a
pure function ``(Context) -> list[Message]`` in its own module; the ``Context``
(``meshlet.analyzers.context``) holds the typed objects of the analysis, where each
came from, the mesh settings and a pilot snapshot, so that an analyzer asks the
control plane's own functions — peer-authentication composition, Sidecar scoping,
the listener builders and the simulator — instead of guessing what they do.

Findings use Istio's codes where Istio has the check and meshlet's ``MSH…`` codes
where it does not (``meshlet.analyzers.message.CATALOG``, ``docs/analyzers.md``).
``run_analyzers`` runs them all; ``meshlet.resources.analysis`` adds the schema
findings and sorts everything as istioctl does.
"""

from __future__ import annotations

from collections.abc import Callable

from meshlet.analyzers.context import Context
from meshlet.analyzers.injection import analyze_injection
from meshlet.analyzers.message import Message
from meshlet.analyzers.plaintext_tls_port import analyze_plaintext_tls_ports
from meshlet.analyzers.port_level_mtls import analyze_port_level_mtls
from meshlet.analyzers.port_names import analyze_port_names
from meshlet.analyzers.selectors import analyze_selectors
from meshlet.analyzers.sidecar_tls import analyze_sidecar_ingress_tls
from meshlet.analyzers.sidecars import analyze_sidecar_conflicts
from meshlet.analyzers.tls_files import analyze_tls_files
from meshlet.analyzers.user_volumes import analyze_user_volumes

__all__ = ["ANALYZERS", "Analyzer", "run_analyzers"]

Analyzer = Callable[[Context], list[Message]]

ANALYZERS: tuple[tuple[str, Analyzer], ...] = (
    ("sidecar.IngressTLSAnalyzer", analyze_sidecar_ingress_tls),
    ("authn.PortLevelMtlsAnalyzer", analyze_port_level_mtls),
    ("sidecar.TLSFilesAnalyzer", analyze_tls_files),
    ("injection.UserVolumeAnalyzer", analyze_user_volumes),
    ("selectors.WorkloadSelectorAnalyzer", analyze_selectors),
    ("sidecar.SelectorConflictAnalyzer", analyze_sidecar_conflicts),
    ("injection.Analyzer", analyze_injection),
    ("service.PortNameAnalyzer", analyze_port_names),
    ("sidecar.PlaintextTLSPortAnalyzer", analyze_plaintext_tls_ports),
)


def run_analyzers(context: Context) -> list[Message]:
    """Every analyzer's messages, unsorted."""
    messages: list[Message] = []
    for _, analyzer in ANALYZERS:
        messages.extend(analyzer(context))
    return messages
