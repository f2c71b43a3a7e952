"""MSH0003 SidecarTLSFileNotMounted: a Sidecar ingress ``tls`` file that no volume
brings into the sidecar.

The certificate, key, CA and CRL of a Sidecar ingress listener are read by the
sidecar from its own filesystem; they get there through the workload's
``sidecar.istio.io/userVolume`` / ``userVolumeMount`` annotations (the injector mounts
them into ``istio-proxy`` only). A path under none of the sidecar's mounts does not
exist for it. Checked for each workload the Sidecar scopes (for a pod running in the
cluster, against its ``istio-proxy`` container's real mounts); a workload whose
annotations cannot be read is MSH0005's, not this analyzer's.
"""

from __future__ import annotations

import posixpath

from meshlet.analyzers._targets import sidecar_targets
from meshlet.analyzers._volumes import (
    INJECTOR_MOUNT_PATHS,
    USER_VOLUME,
    USER_VOLUME_MOUNT,
    covered,
    read_user_volumes,
)
from meshlet.analyzers.context import Context
from meshlet.analyzers.message import SIDECAR_TLS_FILE_NOT_MOUNTED, Message
from meshlet.daemon.injection import PROXY_CONTAINER
from meshlet.resources.istio import ServerTLSSettings
from meshlet.resources.yamlsource import Path

__all__ = ["analyze_tls_files", "tls_files"]


def tls_files(tls: ServerTLSSettings) -> list[tuple[Path, str, str]]:
    """``(path inside tls, field name, file)`` for every file a tls block names."""
    files: list[tuple[Path, str, str]] = []
    for field, value in (
        ("serverCertificate", tls.server_certificate),
        ("privateKey", tls.private_key),
        ("caCertificates", tls.ca_certificates),
        ("caCrl", tls.ca_crl),
    ):
        if value:
            files.append(((field,), field, value))
    for index, certificate in enumerate(tls.tls_certificates):
        for field, value in (
            ("serverCertificate", certificate.server_certificate),
            ("privateKey", certificate.private_key),
            ("caCertificates", certificate.ca_certificates),
        ):
            if value:
                files.append((("tlsCertificates", index, field), field, value))
    return files


def analyze_tls_files(context: Context) -> list[Message]:
    messages: list[Message] = []
    for sourced in context.sidecars:
        sidecar = sourced.value
        for index, listener in enumerate(sidecar.ingress):
            if listener is None or listener.tls is None or listener.port is None:
                continue
            files = tls_files(listener.tls)
            if not files:
                continue
            missing: dict[tuple[Path, str, str], list[str]] = {}
            for target in sidecar_targets(context, sidecar):
                if target.source is None:
                    continue  # no workload of the analysis: nothing to check against
                proxy = target.source.spec.container(PROXY_CONTAINER)
                if target.source.running_proxy and proxy is not None:
                    # a running pod: what its sidecar really has mounted
                    mounted = tuple(mount.mount_path for mount in proxy.volume_mounts)
                else:
                    volumes = read_user_volumes(target.source)
                    if not volumes.readable:
                        continue
                    mounted = INJECTOR_MOUNT_PATHS + tuple(
                        str(mount["mountPath"]) for mount in volumes.mounts
                    )
                for entry in files:
                    if not covered(entry[2], mounted):
                        missing.setdefault(entry, []).append(str(target.source.ref))
            for (path, field, file), workloads in sorted(missing.items(), key=lambda i: i[0][2]):
                directory = posixpath.dirname(file) or "/"
                text = (
                    f'The tls {field} "{file}" of ingress port {listener.port.number} is in no '
                    f"volume mounted into the sidecar of {', '.join(sorted(workloads))}, so the "
                    f"sidecar cannot read it. Fix: mount its directory into istio-proxy with "
                    f"the annotations {USER_VOLUME} and {USER_VOLUME_MOUNT} of the pod "
                    f'template, e.g. {USER_VOLUME_MOUNT}: \'{{"tls-secret": {{"mountPath": '
                    f'"{directory}/", "readOnly": true}}}}\'.'
                )
                messages.append(
                    SIDECAR_TLS_FILE_NOT_MOUNTED.message(
                        text,
                        sourced.resource.ref,
                        context.location(
                            sourced.resource, ("spec", "ingress", index, "tls", *path)
                        ),
                    )
                )
    return messages
