# The meshlet image: one image for the control plane and the sidecar.
#   docker build -t REGISTRY/meshlet:TAG .
# The sidecar (istio-proxy) runs the image's entrypoint; the control plane's Deployment
# runs `python -m meshlet.kube`, and the istio-init container `python -m meshlet.kube.istio_init`.
FROM python:3.11-slim-bookworm

WORKDIR /opt/meshlet
COPY . .
# Installed the README's way: the bootstrap script brings the system packages
# (iptables for istio-init, iproute2, curl, openssl …) and a virtual environment in .venv.
RUN ./scripts/bootstrap.sh \
    && rm -rf /var/lib/apt/lists/* /root/.cache \
    && .venv/bin/meshlet version

ENV PATH=/opt/meshlet/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1
USER 1337:1337
ENTRYPOINT ["python", "-m", "meshlet.proxy.sidecar"]
