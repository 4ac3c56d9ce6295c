from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("airflow-opa-mutation")
except PackageNotFoundError:  # pragma: no cover - running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

#: The OPA release this release is tested with, kept here so that an installed wheel knows it: ``doctor``
#: compares the running OPA against it; scripts/versions.env reads it from this line to build that OPA.
OPA_VERSION = "1.22.3"
