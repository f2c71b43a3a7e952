"""The sidecar injector's HTTPS endpoint: ``POST /inject`` on 15017 (async shell).

Theory of operation: the API server calls the control plane's ``istiod`` Service
(port 443, target 15017) for each pod the MutatingWebhookConfiguration selects, with
an ``admission.k8s.io/v1`` AdmissionReview as JSON; the answer is the AdmissionReview
that ``meshlet.kube.admission.review_admission`` builds (a JSONPatch adding the
sidecar). The serving certificate is issued by the mesh CA for istiod's names
(``istiod.istio-system.svc`` …), so the webhook configuration's ``caBundle`` is the
mesh root; it is valid for a year from the control plane's start. A body that is not an AdmissionReview
is answered ``400`` with the reason; the API server then fails the pod's creation, as
the webhook's ``failurePolicy: Fail`` asks.
"""

from __future__ import annotations

import json
import logging
import os
import ssl
import tempfile
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from aiohttp import web

from meshlet.ca.server import ISTIOD_SERVER_NAMES
from meshlet.ca.signing import Signer, issue_serving_certificate
from meshlet.daemon.injection import InjectionSettings
from meshlet.errors import ConfigError
from meshlet.kube.admission import review_admission

__all__ = ["MAX_REVIEW_BYTES", "WebhookServer", "serving_context"]

log = logging.getLogger("meshlet.kube.webhook")

MAX_REVIEW_BYTES = 8 * 1024 * 1024
SERVING_TTL = timedelta(days=365)


def serving_context(
    signer: Signer,
    *,
    now: datetime,
    names: Sequence[str] = ISTIOD_SERVER_NAMES,
    ttl: timedelta = SERVING_TTL,
) -> ssl.SSLContext:
    """A TLS server context with a certificate for ``names`` from the mesh CA."""
    chain, key = issue_serving_certificate(signer, names, now=now, ttl=ttl)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    with tempfile.TemporaryDirectory(prefix="meshlet-webhook-") as directory:
        cert_path = os.path.join(directory, "tls.crt")
        key_path = os.path.join(directory, "tls.key")
        with open(cert_path, "w", encoding="ascii") as handle:
            handle.write("".join(chain))
        with open(os.open(key_path, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as handle:
            handle.write(key)
        context.load_cert_chain(cert_path, key_path)
    return context


class WebhookServer:
    """Serves ``/inject`` over TLS."""

    def __init__(
        self,
        settings: InjectionSettings,
        signer: Signer,
        *,
        namespace_labels: Callable[[str], Mapping[str, str] | None] = lambda namespace: None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.signer = signer
        self.namespace_labels = namespace_labels
        self._now = now
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        self.reviews = 0

    async def _inject(self, request: web.Request) -> web.Response:
        try:
            review = json.loads(await request.read())
            namespace = str(((review or {}).get("request") or {}).get("namespace") or "")
            answer = review_admission(
                review, settings=self.settings, namespace_labels=self.namespace_labels(namespace)
            )
        except (ValueError, AttributeError) as error:
            return web.Response(status=400, text=f"the request body is not JSON: {error}\n")
        except ConfigError as error:
            return web.Response(status=400, text=f"{error.message}\n")
        self.reviews += 1
        response = answer["response"]
        log.info(
            "inject: %s %s/%s: allowed=%s patched=%s",
            response["uid"],
            namespace,
            ((review.get("request") or {}).get("object") or {}).get("metadata", {}).get("name")
            or "(generated name)",
            response["allowed"],
            "patch" in response,
        )
        return web.json_response(answer)

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0 picks one); returns the bound port."""
        app = web.Application(client_max_size=MAX_REVIEW_BYTES)
        app.router.add_post("/inject", self._inject)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(
            self._runner, host, port, ssl_context=serving_context(self.signer, now=self._now())
        )
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
