"""The OPA a command asks: a running one (``--url``), or one started for the command (``--policies``).

With ``--policies`` each distinct configuration delta (``--config``, or a sample's ``config:``) gets its
own local OPA, the delta written as ``{"airflow": {"pod": {"config": delta}}}`` to a data file served
next to the policies (OPA merges data files key by key).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click
import yaml

from ..config import Settings, Source, load_settings, read_raw, settings_from_raw
from ..errors import ConfigError
from ..hook import MutationHook
from ._errors import CliError, OpaStartError
from ._policy_config import load_yaml

F = TypeVar("F", bound=Callable[..., Any])


def opa_options(function: F) -> F:
    """``--url`` (a running OPA) or ``--policies DIR`` [``--config FILE``] (a local OPA for this command)."""
    function = click.option(
        "--config",
        "config_file",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="With --policies: a YAML/JSON configuration delta, served as data.airflow.pod.config.",
    )(function)
    function = click.option(
        "--policies",
        type=click.Path(exists=True, file_okay=False, path_type=Path),
        help="Start the pinned OPA serving this policy folder for the duration of the command.",
    )(function)
    return click.option(
        "--url",
        help="A running OPA's base URL (default: [opa_mutation] url, from the environment or airflow.cfg).",
    )(function)


def configured_sources(url: str | None) -> dict[str, Source]:
    """Each [opa_mutation] value and where it came from, with ``--url`` overriding when given."""
    raw = read_raw()
    if url is not None:
        raw = {**raw, "url": Source("url", "--url", url)}
    return raw


def load_config_file(path: Path) -> dict[str, Any]:
    try:
        document = load_yaml(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise CliError(f"cannot read the configuration delta {path}: {exc}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise CliError(f"{path}: a configuration delta must be a mapping, got {type(document).__name__}")
    return document


@dataclass
class OpaProvider:
    """Hands out hooks: against ``--url``, or against one local OPA per distinct configuration delta."""

    url: str | None = None
    policies: Path | None = None
    config: dict[str, Any] | None = None
    audit_annotation: bool | None = None
    warn: Callable[[str], None] = lambda message: None
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    _hooks: dict[str, MutationHook] = field(default_factory=dict)
    _base: Settings | None = None
    _tmp: Path | None = None

    @property
    def local(self) -> bool:
        return self.policies is not None

    def __enter__(self) -> OpaProvider:
        if self.policies is not None and self.url is not None:
            raise CliError("give either --url (a running OPA) or --policies (start one), not both")
        if self.config is not None and self.policies is None:
            raise CliError("--config needs --policies: a running OPA serves its own configuration data")
        if self.policies is None:
            self._base = settings_from_raw(configured_sources(self.url))
        else:
            try:
                self._base = load_settings()
            except ConfigError as exc:
                self.warn(f"ignoring the configuration ({exc}); using the defaults with the local OPA")
                self._base = Settings()
        if self.audit_annotation is not None:
            self._base = dataclasses.replace(self._base, audit_annotation=self.audit_annotation)
        return self

    def __exit__(self, *exc: object) -> None:
        for hook in self._hooks.values():
            hook.close()
        self._hooks.clear()
        self._stack.close()

    @property
    def settings(self) -> Settings:
        assert self._base is not None, "use OpaProvider as a context manager"
        return self._base

    def hook(self, delta: Mapping[str, Any] | None = None) -> MutationHook:
        """The hook for pods needing this configuration delta (ignored with --url, and with --config)."""
        if self.policies is None:
            key = ""
        else:
            effective = self.config if self.config is not None else dict(delta or {})
            key = json.dumps(effective, sort_keys=True)
        hook = self._hooks.get(key)
        if hook is None:
            settings = self.settings if self.policies is None else self._start(json.loads(key))
            hook = self._hooks[key] = MutationHook(settings, trust_pod_ids=True)
        return hook

    def _start(self, delta: dict[str, Any]) -> Settings:
        from ._local_opa import LocalOpa, OpaNotFound

        assert self.policies is not None
        paths: list[Path] = [self.policies]
        if delta:
            if self._tmp is None:
                self._tmp = Path(self._stack.enter_context(tempfile.TemporaryDirectory(prefix="aom-cli-")))
            data = self._tmp / f"config-{len(self._hooks)}.json"
            data.write_text(json.dumps({"airflow": {"pod": {"config": delta}}}))
            paths.append(data)
        try:
            opa = LocalOpa(paths)
            opa.start()
        except OpaNotFound as exc:
            raise OpaStartError(str(exc), "put opa on PATH, or set AOM_OPA_BIN to an opa binary") from None
        except (RuntimeError, OSError) as exc:
            raise OpaStartError(
                f"OPA could not start with {', '.join(map(str, paths))}: {exc}",
                "fix the Rego or data error above (`opa check` names the file and line)",
            ) from None
        self._stack.callback(opa.stop)
        return dataclasses.replace(
            self.settings,
            url=opa.url,
            token=None,
            token_file=None,
            ca_bundle=None,
            client_cert=None,
            client_key=None,
            timeout=max(self.settings.timeout, 10.0),
        )
