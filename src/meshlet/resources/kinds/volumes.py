"""Core ``v1`` volumes: ``Volume`` and every volume source a pod may name.

meshlet's local runtime serves ``secret``, ``configMap``, ``emptyDir``, ``projected`` and
``downwardAPI`` volumes; the other sources are here so that any manifest the API server
accepts also decodes here (and a typo in one is still an unknown field).
"""

from __future__ import annotations

from meshlet.resources.kinds.meta import LABEL_SELECTOR, OBJECT_META, QUANTITY, RESOURCE_LIST
from meshlet.resources.schema import BOOL, INT, STRING, ListOf, MapOf, Obj

__all__ = ["LOCAL_OBJECT_REFERENCE", "OBJECT_FIELD_SELECTOR", "RESOURCE_FIELD_SELECTOR", "VOLUME"]

# --- references and selectors used by volumes and containers alike -----------------

LOCAL_OBJECT_REFERENCE = Obj("LocalObjectReference", {"name": STRING})

TYPED_LOCAL_OBJECT_REFERENCE = Obj(
    "TypedLocalObjectReference",
    {"apiGroup": STRING, "kind": STRING, "name": STRING},
    required=frozenset({"kind", "name"}),
)

TYPED_OBJECT_REFERENCE = Obj(
    "TypedObjectReference",
    {"apiGroup": STRING, "kind": STRING, "name": STRING, "namespace": STRING},
    required=frozenset({"kind", "name"}),
)

KEY_TO_PATH = Obj(
    "KeyToPath",
    {"key": STRING, "mode": INT, "path": STRING},
    required=frozenset({"key", "path"}),
)

OBJECT_FIELD_SELECTOR = Obj(
    "ObjectFieldSelector",
    {"apiVersion": STRING, "fieldPath": STRING},
    required=frozenset({"fieldPath"}),
)

RESOURCE_FIELD_SELECTOR = Obj(
    "ResourceFieldSelector",
    {"containerName": STRING, "divisor": QUANTITY, "resource": STRING},
    required=frozenset({"resource"}),
)

# --- the sources meshlet serves -------------------------------------------------------

SECRET_VOLUME_SOURCE = Obj(
    "SecretVolumeSource",
    {
        "defaultMode": INT,
        "items": ListOf(KEY_TO_PATH),
        "optional": BOOL,
        "secretName": STRING,
    },
)

CONFIG_MAP_VOLUME_SOURCE = Obj(
    "ConfigMapVolumeSource",
    {
        "defaultMode": INT,
        "items": ListOf(KEY_TO_PATH),
        "name": STRING,
        "optional": BOOL,
    },
)

EMPTY_DIR_VOLUME_SOURCE = Obj(
    "EmptyDirVolumeSource",
    {"medium": STRING, "sizeLimit": QUANTITY},
)

DOWNWARD_API_VOLUME_FILE = Obj(
    "DownwardAPIVolumeFile",
    {
        "fieldRef": OBJECT_FIELD_SELECTOR,
        "mode": INT,
        "path": STRING,
        "resourceFieldRef": RESOURCE_FIELD_SELECTOR,
    },
    required=frozenset({"path"}),
)

DOWNWARD_API_VOLUME_SOURCE = Obj(
    "DownwardAPIVolumeSource",
    {"defaultMode": INT, "items": ListOf(DOWNWARD_API_VOLUME_FILE)},
)

# projected volumes: several sources merged into one directory

CLUSTER_TRUST_BUNDLE_PROJECTION = Obj(
    "ClusterTrustBundleProjection",
    {
        "labelSelector": LABEL_SELECTOR,
        "name": STRING,
        "optional": BOOL,
        "path": STRING,
        "signerName": STRING,
    },
    required=frozenset({"path"}),
)

CONFIG_MAP_PROJECTION = Obj(
    "ConfigMapProjection",
    {"items": ListOf(KEY_TO_PATH), "name": STRING, "optional": BOOL},
)

DOWNWARD_API_PROJECTION = Obj(
    "DownwardAPIProjection",
    {"items": ListOf(DOWNWARD_API_VOLUME_FILE)},
)

POD_CERTIFICATE_PROJECTION = Obj(
    "PodCertificateProjection",
    {
        "certificateChainPath": STRING,
        "credentialBundlePath": STRING,
        "keyPath": STRING,
        "keyType": STRING,
        "maxExpirationSeconds": INT,
        "signerName": STRING,
        "userAnnotations": MapOf(STRING),
    },
    required=frozenset({"keyType", "signerName"}),
)

SECRET_PROJECTION = Obj(
    "SecretProjection",
    {"items": ListOf(KEY_TO_PATH), "name": STRING, "optional": BOOL},
)

SERVICE_ACCOUNT_TOKEN_PROJECTION = Obj(
    "ServiceAccountTokenProjection",
    {"audience": STRING, "expirationSeconds": INT, "path": STRING},
    required=frozenset({"path"}),
)

VOLUME_PROJECTION = Obj(
    "VolumeProjection",
    {
        "clusterTrustBundle": CLUSTER_TRUST_BUNDLE_PROJECTION,
        "configMap": CONFIG_MAP_PROJECTION,
        "downwardAPI": DOWNWARD_API_PROJECTION,
        "podCertificate": POD_CERTIFICATE_PROJECTION,
        "secret": SECRET_PROJECTION,
        "serviceAccountToken": SERVICE_ACCOUNT_TOKEN_PROJECTION,
    },
)

PROJECTED_VOLUME_SOURCE = Obj(
    "ProjectedVolumeSource",
    {"defaultMode": INT, "sources": ListOf(VOLUME_PROJECTION)},
)

# --- ephemeral volumes: a PersistentVolumeClaim made for the pod ---------------------

VOLUME_RESOURCE_REQUIREMENTS = Obj(
    "VolumeResourceRequirements",
    {"limits": RESOURCE_LIST, "requests": RESOURCE_LIST},
)

PERSISTENT_VOLUME_CLAIM_SPEC = Obj(
    "PersistentVolumeClaimSpec",
    {
        "accessModes": ListOf(STRING),
        "dataSource": TYPED_LOCAL_OBJECT_REFERENCE,
        "dataSourceRef": TYPED_OBJECT_REFERENCE,
        "resources": VOLUME_RESOURCE_REQUIREMENTS,
        "selector": LABEL_SELECTOR,
        "storageClassName": STRING,
        "volumeAttributesClassName": STRING,
        "volumeMode": STRING,
        "volumeName": STRING,
    },
)

PERSISTENT_VOLUME_CLAIM_TEMPLATE = Obj(
    "PersistentVolumeClaimTemplate",
    {"metadata": OBJECT_META, "spec": PERSISTENT_VOLUME_CLAIM_SPEC},
    required=frozenset({"spec"}),
)

EPHEMERAL_VOLUME_SOURCE = Obj(
    "EphemeralVolumeSource",
    {"volumeClaimTemplate": PERSISTENT_VOLUME_CLAIM_TEMPLATE},
)

PERSISTENT_VOLUME_CLAIM_VOLUME_SOURCE = Obj(
    "PersistentVolumeClaimVolumeSource",
    {"claimName": STRING, "readOnly": BOOL},
    required=frozenset({"claimName"}),
)

# --- node-local and image sources ------------------------------------------------------

HOST_PATH_VOLUME_SOURCE = Obj(
    "HostPathVolumeSource",
    {"path": STRING, "type": STRING},
    required=frozenset({"path"}),
)

IMAGE_VOLUME_SOURCE = Obj(
    "ImageVolumeSource",
    {"pullPolicy": STRING, "reference": STRING},
)

GIT_REPO_VOLUME_SOURCE = Obj(  # deprecated by Kubernetes, still served
    "GitRepoVolumeSource",
    {"directory": STRING, "repository": STRING, "revision": STRING},
    required=frozenset({"repository"}),
)

# --- network and cloud storage ---------------------------------------------------------

AWS_ELASTIC_BLOCK_STORE_VOLUME_SOURCE = Obj(
    "AWSElasticBlockStoreVolumeSource",
    {"fsType": STRING, "partition": INT, "readOnly": BOOL, "volumeID": STRING},
    required=frozenset({"volumeID"}),
)

AZURE_DISK_VOLUME_SOURCE = Obj(
    "AzureDiskVolumeSource",
    {
        "cachingMode": STRING,
        "diskName": STRING,
        "diskURI": STRING,
        "fsType": STRING,
        "kind": STRING,
        "readOnly": BOOL,
    },
    required=frozenset({"diskName", "diskURI"}),
)

AZURE_FILE_VOLUME_SOURCE = Obj(
    "AzureFileVolumeSource",
    {"readOnly": BOOL, "secretName": STRING, "shareName": STRING},
    required=frozenset({"secretName", "shareName"}),
)

CEPH_FS_VOLUME_SOURCE = Obj(
    "CephFSVolumeSource",
    {
        "monitors": ListOf(STRING),
        "path": STRING,
        "readOnly": BOOL,
        "secretFile": STRING,
        "secretRef": LOCAL_OBJECT_REFERENCE,
        "user": STRING,
    },
    required=frozenset({"monitors"}),
)

CINDER_VOLUME_SOURCE = Obj(
    "CinderVolumeSource",
    {
        "fsType": STRING,
        "readOnly": BOOL,
        "secretRef": LOCAL_OBJECT_REFERENCE,
        "volumeID": STRING,
    },
    required=frozenset({"volumeID"}),
)

CSI_VOLUME_SOURCE = Obj(
    "CSIVolumeSource",
    {
        "driver": STRING,
        "fsType": STRING,
        "nodePublishSecretRef": LOCAL_OBJECT_REFERENCE,
        "readOnly": BOOL,
        "volumeAttributes": MapOf(STRING),
    },
    required=frozenset({"driver"}),
)

FC_VOLUME_SOURCE = Obj(
    "FCVolumeSource",
    {
        "fsType": STRING,
        "lun": INT,
        "readOnly": BOOL,
        "targetWWNs": ListOf(STRING),
        "wwids": ListOf(STRING),
    },
)

FLEX_VOLUME_SOURCE = Obj(
    "FlexVolumeSource",
    {
        "driver": STRING,
        "fsType": STRING,
        "options": MapOf(STRING),
        "readOnly": BOOL,
        "secretRef": LOCAL_OBJECT_REFERENCE,
    },
    required=frozenset({"driver"}),
)

FLOCKER_VOLUME_SOURCE = Obj(
    "FlockerVolumeSource",
    {"datasetName": STRING, "datasetUUID": STRING},
)

GCE_PERSISTENT_DISK_VOLUME_SOURCE = Obj(
    "GCEPersistentDiskVolumeSource",
    {"fsType": STRING, "partition": INT, "pdName": STRING, "readOnly": BOOL},
    required=frozenset({"pdName"}),
)

GLUSTERFS_VOLUME_SOURCE = Obj(
    "GlusterfsVolumeSource",
    {"endpoints": STRING, "path": STRING, "readOnly": BOOL},
    required=frozenset({"endpoints", "path"}),
)

ISCSI_VOLUME_SOURCE = Obj(
    "ISCSIVolumeSource",
    {
        "chapAuthDiscovery": BOOL,
        "chapAuthSession": BOOL,
        "fsType": STRING,
        "initiatorName": STRING,
        "iqn": STRING,
        "iscsiInterface": STRING,
        "lun": INT,
        "portals": ListOf(STRING),
        "readOnly": BOOL,
        "secretRef": LOCAL_OBJECT_REFERENCE,
        "targetPortal": STRING,
    },
    required=frozenset({"iqn", "lun", "targetPortal"}),
)

NFS_VOLUME_SOURCE = Obj(
    "NFSVolumeSource",
    {"path": STRING, "readOnly": BOOL, "server": STRING},
    required=frozenset({"path", "server"}),
)

PHOTON_PERSISTENT_DISK_VOLUME_SOURCE = Obj(
    "PhotonPersistentDiskVolumeSource",
    {"fsType": STRING, "pdID": STRING},
    required=frozenset({"pdID"}),
)

PORTWORX_VOLUME_SOURCE = Obj(
    "PortworxVolumeSource",
    {"fsType": STRING, "readOnly": BOOL, "volumeID": STRING},
    required=frozenset({"volumeID"}),
)

QUOBYTE_VOLUME_SOURCE = Obj(
    "QuobyteVolumeSource",
    {
        "group": STRING,
        "readOnly": BOOL,
        "registry": STRING,
        "tenant": STRING,
        "user": STRING,
        "volume": STRING,
    },
    required=frozenset({"registry", "volume"}),
)

RBD_VOLUME_SOURCE = Obj(
    "RBDVolumeSource",
    {
        "fsType": STRING,
        "image": STRING,
        "keyring": STRING,
        "monitors": ListOf(STRING),
        "pool": STRING,
        "readOnly": BOOL,
        "secretRef": LOCAL_OBJECT_REFERENCE,
        "user": STRING,
    },
    required=frozenset({"image", "monitors"}),
)

SCALE_IO_VOLUME_SOURCE = Obj(
    "ScaleIOVolumeSource",
    {
        "fsType": STRING,
        "gateway": STRING,
        "protectionDomain": STRING,
        "readOnly": BOOL,
        "secretRef": LOCAL_OBJECT_REFERENCE,
        "sslEnabled": BOOL,
        "storageMode": STRING,
        "storagePool": STRING,
        "system": STRING,
        "volumeName": STRING,
    },
    required=frozenset({"gateway", "secretRef", "system"}),
)

STORAGE_OS_VOLUME_SOURCE = Obj(
    "StorageOSVolumeSource",
    {
        "fsType": STRING,
        "readOnly": BOOL,
        "secretRef": LOCAL_OBJECT_REFERENCE,
        "volumeName": STRING,
        "volumeNamespace": STRING,
    },
)

VSPHERE_VIRTUAL_DISK_VOLUME_SOURCE = Obj(
    "VsphereVirtualDiskVolumeSource",
    {
        "fsType": STRING,
        "storagePolicyID": STRING,
        "storagePolicyName": STRING,
        "volumePath": STRING,
    },
    required=frozenset({"volumePath"}),
)

# --- the volume: a name and exactly one source -----------------------------------------

VOLUME = Obj(
    "Volume",
    {
        "name": STRING,
        # what meshlet serves
        "configMap": CONFIG_MAP_VOLUME_SOURCE,
        "downwardAPI": DOWNWARD_API_VOLUME_SOURCE,
        "emptyDir": EMPTY_DIR_VOLUME_SOURCE,
        "projected": PROJECTED_VOLUME_SOURCE,
        "secret": SECRET_VOLUME_SOURCE,
        # the rest of the API
        "awsElasticBlockStore": AWS_ELASTIC_BLOCK_STORE_VOLUME_SOURCE,
        "azureDisk": AZURE_DISK_VOLUME_SOURCE,
        "azureFile": AZURE_FILE_VOLUME_SOURCE,
        "cephfs": CEPH_FS_VOLUME_SOURCE,
        "cinder": CINDER_VOLUME_SOURCE,
        "csi": CSI_VOLUME_SOURCE,
        "ephemeral": EPHEMERAL_VOLUME_SOURCE,
        "fc": FC_VOLUME_SOURCE,
        "flexVolume": FLEX_VOLUME_SOURCE,
        "flocker": FLOCKER_VOLUME_SOURCE,
        "gcePersistentDisk": GCE_PERSISTENT_DISK_VOLUME_SOURCE,
        "gitRepo": GIT_REPO_VOLUME_SOURCE,
        "glusterfs": GLUSTERFS_VOLUME_SOURCE,
        "hostPath": HOST_PATH_VOLUME_SOURCE,
        "image": IMAGE_VOLUME_SOURCE,
        "iscsi": ISCSI_VOLUME_SOURCE,
        "nfs": NFS_VOLUME_SOURCE,
        "persistentVolumeClaim": PERSISTENT_VOLUME_CLAIM_VOLUME_SOURCE,
        "photonPersistentDisk": PHOTON_PERSISTENT_DISK_VOLUME_SOURCE,
        "portworxVolume": PORTWORX_VOLUME_SOURCE,
        "quobyte": QUOBYTE_VOLUME_SOURCE,
        "rbd": RBD_VOLUME_SOURCE,
        "scaleIO": SCALE_IO_VOLUME_SOURCE,
        "storageos": STORAGE_OS_VOLUME_SOURCE,
        "vsphereVolume": VSPHERE_VIRTUAL_DISK_VOLUME_SOURCE,
    },
    required=frozenset({"name"}),
)
