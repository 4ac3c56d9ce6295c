from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("airflow-opa-mutation")
except PackageNotFoundError:  # pragma: no cover - running from a source tree that was not installed
    __version__ = "0.0.0+unknown"
