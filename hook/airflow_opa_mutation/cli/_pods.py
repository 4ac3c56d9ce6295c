"""Pods to evaluate, read from YAML/JSON files or stdin: bare pods, ``kind: List`` items, policy samples."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ._errors import CliError


@dataclass
class PodDocument:
    """One pod to evaluate: from a file (``source`` names file and document), bare or in a policy sample."""

    source: str
    pod: dict[str, Any]
    config: dict[str, Any] | None = None
    description: str | None = None


def read_text(spec: str) -> str:
    if spec == "-":
        return sys.stdin.read()
    try:
        return Path(spec).read_text()
    except OSError as exc:
        raise CliError(f"cannot read {spec}: {exc.strerror or exc}") from None


def load_pod_documents(spec: str) -> list[PodDocument]:
    """Every pod in a YAML/JSON file (or ``-``): bare pods, ``kind: List`` items, or samples with ``pod:``."""
    name = "<stdin>" if spec == "-" else spec
    text = read_text(spec)
    try:
        documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        raise CliError(f"{name}: not YAML or JSON: {exc}") from None
    pods: list[PodDocument] = []
    for number, document in enumerate(documents, 1):
        where = f"{name}#{number}" if len(documents) > 1 else name
        if isinstance(document, dict) and document.get("kind") == "List" and isinstance(document.get("items"), list):
            for index, item in enumerate(document["items"]):
                pods.append(_pod_document(f"{where}[{index}]", item))
        else:
            pods.append(_pod_document(where, document))
    if not pods:
        raise CliError(f"{name}: no pod in it")
    return pods


def _pod_document(where: str, document: Any) -> PodDocument:
    if isinstance(document, dict) and isinstance(document.get("pod"), dict):
        config = document.get("config")
        description = document.get("description")
        return PodDocument(
            where,
            _plain(document["pod"]),
            config if isinstance(config, dict) else None,
            description if isinstance(description, str) else None,
        )
    if isinstance(document, dict) and ("spec" in document or document.get("kind") == "Pod"):
        if document.get("kind", "Pod") != "Pod":
            raise CliError(f"{where}: a {document.get('kind')}, not a Pod")
        return PodDocument(where, _plain(document))
    raise CliError(f"{where}: neither a pod (kind: Pod / spec:) nor a policy sample (pod:)")


def _plain(document: dict[str, Any]) -> dict[str, Any]:
    """YAML's timestamps and other non-JSON scalars as the JSON Kubernetes would send (strings)."""
    result: dict[str, Any] = json.loads(json.dumps(document, default=_json_default))
    return result


def _json_default(value: Any) -> Any:
    isoformat = getattr(value, "isoformat", None)
    if callable(isoformat):
        return str(isoformat()).replace("+00:00", "Z")
    raise TypeError(f"{type(value).__name__} is not JSON")


def decode_pod(document: PodDocument) -> Any:
    from .. import _pod_codec

    try:
        return _pod_codec.decode(document.pod)
    except _pod_codec.DecodeError as exc:
        raise CliError(f"{document.source}: not a pod the kubernetes client can represent: {exc}") from None
