"""The status values, their syncz encoding, and proxy-status's table (no sockets)."""

from __future__ import annotations

from meshlet.cli.proxy_status import format_table, human_duration, render
from meshlet.xds.status import (
    DISPLAY_TYPES,
    ProxyStatus,
    SyncState,
    TypeStatus,
    status_from_response,
    syncz_response,
)

CDS, LDS, EDS, RDS = DISPLAY_TYPES
NODE = "sidecar~10.244.0.7~httpbin-5bbdbd6588-z9vbs.test~test.svc.cluster.local"


def _status() -> ProxyStatus:
    return ProxyStatus(
        node_id=NODE,
        cluster_id="Kubernetes",
        istio_version="1.28.0",
        types=(
            TypeStatus(CDS, SyncState.SYNCED, "a1", "a1", last_updated=1000.0),
            TypeStatus(
                LDS,
                SyncState.ERROR,
                "b2",
                nack='listener "x": name: bad\nsecond',
                last_updated=990.0,
            ),
            TypeStatus(EDS, SyncState.STALE, "c3", last_updated=1000.0),
            TypeStatus(RDS, SyncState.NOT_SENT),
        ),
    )


def test_syncz_round_trip() -> None:
    response = syncz_response([_status()], control_plane_id="istiod-1", version="0.1", nonce="n")
    server, statuses = status_from_response(response)
    assert server == "istiod-1"
    assert statuses == [_status()]


def test_the_table_is_tabwriter_aligned_with_nacks_after_it() -> None:
    text = render("istiod-1", [_status()], now=1005.0)
    assert text == (
        "NAME                              CLUSTER        CDS             LDS             "
        "EDS            RDS          ECDS        ISTIOD       VERSION\n"
        "httpbin-5bbdbd6588-z9vbs.test     Kubernetes     SYNCED (5s)     ERROR (15s)     "
        "STALE (5s)     NOT SENT     IGNORED     istiod-1     1.28.0\n"
        "\n"
        "httpbin-5bbdbd6588-z9vbs.test LDS NACK:\n"
        '    listener "x": name: bad\n'
        "    second\n"
    )


def test_format_table_pads_every_column_but_the_last() -> None:
    assert (
        format_table([("a", "bb", "c"), ("ccc", "d", "eeeee")])
        == "a       bb     c\nccc     d      eeeee\n"
    )


def test_human_duration_as_kubectl() -> None:
    cases = {
        0: "0s",
        59: "59s",
        119: "119s",
        120: "2m",
        125: "2m5s",
        600: "10m",
        3600 * 3: "3h",
        3600 * 3 + 60 * 5: "3h5m",
        3600 * 10: "10h",
        86400 * 3: "3d",
        86400 * 3 + 3600: "3d1h",
        86400 * 30: "30d",
        86400 * 800: "2y70d",
    }
    for seconds, text in cases.items():
        assert human_duration(seconds) == text, seconds
