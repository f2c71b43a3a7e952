"""The sidecar's user volumes: annotations the injector cannot use (MSH0005, MSH0006)
and Secrets they name that do not exist (MSH0004).

``sidecar.istio.io/userVolume`` and ``userVolumeMount`` are JSON in an annotation of
the pod template; a mistake there is only found when a pod is created, and then the
injector refuses the pod (Error). A user volume that names a missing Secret keeps the
pods from starting (or, marked ``optional``, starts the sidecar without its files).
From files alone a missing Secret is a Warning, and only said when the files declare
Secrets of that namespace (secrets are often made by command); in a running cluster
it is an Error unless the volume is optional.
"""

from __future__ import annotations

from collections.abc import Mapping

from meshlet.analyzers._volumes import (
    INJECTOR_VOLUMES,
    USER_VOLUME,
    USER_VOLUME_MOUNT,
    read_user_volumes,
)
from meshlet.analyzers.context import Context, WorkloadSource
from meshlet.analyzers.message import (
    INVALID_USER_VOLUME_ANNOTATION,
    USER_VOLUME_MOUNT_UNDECLARED,
    USER_VOLUME_SECRET_NOT_FOUND,
    Message,
)
from meshlet.daemon.injection import PROXY_CONTAINER
from meshlet.resources.validation import Level

__all__ = ["analyze_user_volumes"]


def analyze_user_volumes(context: Context) -> list[Message]:
    messages: list[Message] = []
    for workload in context.workloads:
        if (
            USER_VOLUME not in workload.annotations
            and USER_VOLUME_MOUNT not in workload.annotations
        ):
            continue
        found = read_user_volumes(workload)
        for annotation, problem in found.problems:
            messages.append(
                INVALID_USER_VOLUME_ANNOTATION.message(
                    f"The annotation {annotation} {problem}: sidecar injection fails, so the "
                    f"pods of {workload.ref} are not created. Fix: write it as a JSON object "
                    'of volumes by name, e.g. {"tls-secret": {"secret": {"secretName": '
                    '"my-secret"}}} for userVolume and {"tls-secret": {"mountPath": '
                    '"/etc/istio/tls-certs/", "readOnly": true}} for userVolumeMount.',
                    workload.ref,
                    context.location(workload.resource, (*workload.annotations_path, annotation)),
                )
            )
        if workload.spec.container(PROXY_CONTAINER) is not None:
            # already injected (a running pod): its user volumes are among its volumes
            messages.extend(_missing_secrets(context, workload, found.volumes))
            continue
        pod_volumes = {volume.name for volume in workload.spec.volumes}
        user_names = {str(volume["name"]) for volume in found.volumes}
        for name in sorted(user_names & (pod_volumes | INJECTOR_VOLUMES)):
            messages.append(
                INVALID_USER_VOLUME_ANNOTATION.message(
                    f'The annotation {USER_VOLUME} declares volume "{name}", which the pod '
                    "already has: sidecar injection fails, so the pods of "
                    f"{workload.ref} are not created. Fix: give the user volume another name.",
                    workload.ref,
                    context.location(workload.resource, (*workload.annotations_path, USER_VOLUME)),
                )
            )
        declared = pod_volumes | user_names | INJECTOR_VOLUMES
        for mount in found.mounts:
            name = str(mount["name"])
            if name in declared:
                continue
            messages.append(
                USER_VOLUME_MOUNT_UNDECLARED.message(
                    f'The annotation {USER_VOLUME_MOUNT} mounts volume "{name}", which neither '
                    f"{USER_VOLUME} nor the pod declares: sidecar injection fails, so the pods "
                    f"of {workload.ref} are not created. Fix: declare it in {USER_VOLUME} "
                    f'(e.g. {{"{name}": {{"secret": {{"secretName": "..."}}}}}}) or mount a '
                    "volume that is declared.",
                    workload.ref,
                    context.location(
                        workload.resource, (*workload.annotations_path, USER_VOLUME_MOUNT)
                    ),
                )
            )
        messages.extend(_missing_secrets(context, workload, found.volumes))
    return messages


def _missing_secrets(
    context: Context, workload: WorkloadSource, volumes: tuple[Mapping[str, object], ...]
) -> list[Message]:
    namespace = workload.namespace
    if not context.secrets_known(namespace):
        return []
    messages = []
    for volume in volumes:
        secret = volume.get("secret")
        if not isinstance(secret, Mapping):
            continue
        secret_name = str(secret.get("secretName") or "")
        if not secret_name or (namespace, secret_name) in context.secrets:
            continue
        optional = secret.get("optional") is True
        if optional:
            consequence = (
                "the volume is optional, so the sidecar starts without its files and any tls "
                "settings that read them fail"
            )
        else:
            consequence = "the pods cannot start until it exists"
        level = Level.ERROR if context.live and not optional else Level.WARNING
        messages.append(
            USER_VOLUME_SECRET_NOT_FOUND.message(
                f'The user volume "{volume["name"]}" of {USER_VOLUME} names Secret '
                f"{namespace}/{secret_name}, which does not exist: {consequence}. Fix: create "
                f"it (meshlet -n {namespace} create secret …) or correct the secretName.",
                workload.ref,
                context.location(workload.resource, (*workload.annotations_path, USER_VOLUME)),
                level=level,
            )
        )
    return messages
