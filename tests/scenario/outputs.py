"""Outputs of a real run of the scenario on meshlet (a Sunday in November), as the
runner captured them: stdout and stderr together, curl's trailing blank line and the
space after ``HTTP/2 200`` included."""

PODS_DEFAULT = """\
NAME                     READY   STATUS    RESTARTS   AGE
sleep-796f6dcbfc-kqn5x   1/1     Running   0          3s
"""

PODS_TEST = """\
NAME                       READY   STATUS    RESTARTS   AGE
httpbin-59cb966ff4-h2d4s   2/2     Running   0          3s
sleep-796f6dcbfc-4292z     2/2     Running   0          2s
"""

SERVICES_TEST = """\
NAME      TYPE        CLUSTER-IP   EXTERNAL-IP   PORT(S)             AGE
httpbin   ClusterIP   10.96.0.3    <none>        8443/TCP,8080/TCP   4s
sleep     ClusterIP   10.96.0.5    <none>        80/TCP              3s
"""

SECRETS = """\
RESOURCE NAME                                                           TYPE           STATUS     VALID CERT     SERIAL NUMBER                                        NOT AFTER                NOT BEFORE
ROOTCA                                                                  CA             ACTIVE     true           310812750346332280270301341769070062249              2036-11-26T16:34:15Z     2026-11-29T16:34:15Z
default                                                                 Cert Chain     ACTIVE     true           257279731108030202587917601950162157453              2026-11-30T16:34:19Z     2026-11-29T16:32:19Z
file-cert:/etc/istio/tls-certs/tls.crt~/etc/istio/tls-certs/tls.key     Cert Chain     ACTIVE     true           1                                                    2027-11-29T16:34:17Z     2026-11-29T16:34:17Z
file-root:/etc/istio/tls-ca-certs/ca.crt                                CA             ACTIVE     true           180741134643348862406603149177839794055444975393     2027-11-29T16:34:17Z     2026-11-29T16:34:17Z
"""

IN_MESH = """\
HTTP/1.1 200 OK\r
server: envoy\r
date: Sun, 29 Nov 2026 16:34:24 GMT\r
content-type: text/html; charset=utf-8\r
access-control-allow-origin: *\r
access-control-allow-credentials: true\r
content-length: 0\r
x-envoy-upstream-service-time: 26\r
\r
"""

FROM_OUTSIDE = """\
HTTP/2 200 \r
server: istio-envoy\r
date: Sun, 29 Nov 2026 16:34:26 GMT\r
content-type: text/html; charset=utf-8\r
access-control-allow-origin: *\r
access-control-allow-credentials: true\r
content-length: 0\r
x-envoy-upstream-service-time: 3\r
x-envoy-decorator-operation: ingress-sidecar.test:9080/*\r
\r
"""

REFUSED = """\
curl: (56) Recv failure: Connection reset by peer
command terminated with exit code 56
"""
