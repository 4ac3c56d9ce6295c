from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("airflow-opa-mutation")
except PackageNotFoundError:  # pragma: no cover - running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

#: The OPA release this release is tested with, kept here so that an installed wheel knows it: ``doctor``
#: compares the running OPA against it; scripts/versions.env reads it from this line to build that OPA.
OPA_VERSION = "1.22.3"
#: The oldest OPA the shipped configuration is safe with: before 1.21.3 a bundle ``signing`` block without
#: ``keyid`` (deploy/opa/config.yaml's) let an unsigned bundle through (GHSA-g2pf-6v5v-qcc8). ``doctor``
#: fails an older OPA.
MIN_OPA_VERSION = "1.21.3"
