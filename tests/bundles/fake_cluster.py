"""``kubectl`` and ``helm`` for tests/bundles/test_documented_rollout.py: the subset of both that the
deployment docs' commands use, keeping ConfigMaps as files in ``$AOM_FAKE_KUBE`` so the test can start the
sidecar from what a reader's commands created. No kubelet runs here; the test itself starts the sidecar
container's command (as tests/bundles/test_kubernetes_sidecar.py does) from these ConfigMaps.

Installed on PATH as ``kubectl`` and ``helm`` (wrappers running ``fake_cluster.py kubectl|helm ...``). Anything outside the subset fails
with exit status 2, so a documented command this stand-in does not understand fails the test.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

# The ConfigMap's name, and what `create configmap` accepts; kubectl's rules for keys.
_KEY_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def _state() -> Path:
    import os

    root = Path(os.environ["AOM_FAKE_KUBE"])
    (root / "configmaps").mkdir(parents=True, exist_ok=True)
    return root


def _log(line: str) -> None:
    with (_state() / "events.log").open("a") as handle:
        handle.write(line + "\n")


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def _store(document: dict[str, Any]) -> str:
    if document.get("kind") != "ConfigMap":
        _log(f"applied {document.get('kind')}/{document.get('metadata', {}).get('name')}")
        return f"{document.get('kind', '').lower()}/{document['metadata']['name']} configured"
    name = document["metadata"]["name"]
    for key in document.get("data") or {}:
        if not set(key) <= _KEY_CHARS:
            raise ValueError(f"ConfigMap {name}: invalid key {key!r}")
    (_state() / "configmaps" / f"{name}.yaml").write_text(yaml.safe_dump(document))
    _log(f"configmap {name}")
    return f"configmap/{name} configured"


def _apply(files: list[str]) -> int:
    for name in files:
        text = sys.stdin.read() if name == "-" else Path(name).read_text()
        for document in yaml.safe_load_all(text):
            if document:
                print(_store(document))
    return 0


def _create_configmap(args: list[str]) -> int:
    name, *options = args
    data: dict[str, str] = {}
    dry_run = output = None
    it = iter(options)
    for option in it:
        flag, _, value = option.partition("=")
        if not value and flag in {"--from-file", "--from-literal", "--dry-run", "-o", "--output"}:
            value = next(it)
        if flag == "--from-literal":
            key, _, text = value.partition("=")
            data[key] = text
        elif flag == "--from-file":
            key, _, path = value.rpartition("=")
            source = Path(path)
            if source.is_dir():
                data |= {p.name: p.read_text() for p in sorted(source.iterdir()) if p.is_file()}
            elif source.is_file():
                data[key or source.name] = source.read_text()
            else:
                return _fail(f"error reading {path}: no such file or directory")
        elif flag == "--dry-run":
            dry_run = value
        elif flag in {"-o", "--output"}:
            output = value
        else:
            return _fail(f"fake kubectl: unsupported option {option}")
    document = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}
    if dry_run == "client" and output == "yaml":
        print(yaml.safe_dump(document), end="")
        return 0
    if (_state() / "configmaps" / f"{name}.yaml").exists():
        return _fail(f'configmaps "{name}" already exists')
    print(_store(document))
    return 0


def kubectl(argv: list[str]) -> int:
    args = list(argv)
    if args[:1] == ["-n"]:
        args = args[2:]
    if args[:1] == ["apply"]:
        files = [args[i + 1] for i, a in enumerate(args) if a == "-f"]
        if len(files) * 2 + 1 != len(args):
            return _fail(f"fake kubectl: unsupported apply {args}")
        return _apply(files)
    if args[:2] == ["create", "configmap"]:
        return _create_configmap(args[2:])
    if args[:2] == ["rollout", "restart"]:
        _log("rollout restart " + " ".join(args[2:]))
        return 0
    print(f"fake kubectl: unsupported command {argv}", file=sys.stderr)
    return 2


def helm(argv: list[str]) -> int:
    if argv[:2] != ["upgrade", "--install"]:
        print(f"fake helm: unsupported command {argv}", file=sys.stderr)
        return 2
    for i, arg in enumerate(argv):
        if arg == "-f" and not Path(argv[i + 1]).is_file():
            return _fail(f"open {argv[i + 1]}: no such file or directory")
    _log("helm " + " ".join(argv))
    return 0


if __name__ == "__main__":
    tool, *arguments = sys.argv[1:]
    sys.exit(helm(arguments) if tool == "helm" else kubectl(arguments))
