"""The hook itself: pod -> OPA -> decision -> atomic patch, with fail modes, dry-run and audit logging.

``MutationHook`` is the object; ``pod_mutation_hook`` is the function Airflow calls, backed by one
process-wide hook built lazily from the configuration (so importing this package costs nothing and a
misconfiguration surfaces at the first pod with a ``ConfigError``).
"""

from __future__ import annotations

import difflib
import importlib
import json
import logging
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client as k8s

from . import _audit, _json, _limits, _patch_engine, _pod_codec, _redact, _task_events
from ._airflow_context import airflow_context, describe, escape
from ._audit import AUDIT_ANNOTATION
from ._opa_client import DecisionClient
from ._version import __version__
from .config import Settings, load_settings
from .decision import Decision, parse_decision
from .errors import (
    OpaMutationError,
    OpaUnavailable,
    PatchRejected,
    PodDenied,
    PodRef,
)

log = logging.getLogger("airflow_opa_mutation")


@dataclass
class Outcome:
    """What one evaluation decided and what it did; returned by :meth:`MutationHook.evaluate`."""

    pod: PodRef
    request_uid: str
    mode: str
    decision: Decision | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    new_pod: Any = None
    error: OpaMutationError | None = None
    duration: float = 0.0
    #: Whether the patch changed the pod (judged once, on the subtrees it wrote in).
    changed: bool = False
    #: Whether the audit annotation was written on a pod the patch left alone (exemptions applied).
    annotated: bool = False
    applied: bool = False
    #: ``input.airflow`` as sent to OPA: the ids Airflow set for the pod's task and the launcher.
    airflow: dict[str, Any] = field(default_factory=dict)
    #: What the hook did, as the metrics' ``outcome`` tag: applied, unchanged, denied, error, failed_open;
    #: in dry-run would_change, no_change, would_deny, error. Set when the hook acts on the outcome.
    result: str = ""

    def diff(self) -> str:
        """A unified diff of the pod as JSON, before and after the patch, its credentials redacted.

        The diff goes to the log (a KubernetesPodOperator task's log is readable by anyone who can view
        the DAG). Each container's ``env``/``envFrom`` become ``<redacted: N entries>``, marked ``changed``
        where the patch changed them; secret flags' values, header values and secret annotations become
        ``<redacted>`` (``_redact``).
        """
        if self.before is None or self.after is None:
            return ""
        before, after = _redact.redact(self.before, self.after), _redact.redact(self.after, self.before)
        old = json.dumps(before, indent=2, sort_keys=True).splitlines()
        new = json.dumps(after, indent=2, sort_keys=True).splitlines()
        return "\n".join(difflib.unified_diff(old, new, "pod (from Airflow)", "pod (after policy)", lineterm=""))


class MutationHook:
    """Evaluates pods against OPA and mutates them in place; safe to call from many threads."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        metrics: Callable[..., None] | None = None,
        trust_pod_ids: bool = False,
    ) -> None:
        """``metrics``: called as ``metrics("incr" | "timing", name, *values, tags={...})``, like Airflow's
        ``Stats`` (docs/running-at-scale.md, "Airflow metrics of the hook"); its failures never fail a pod.

        ``trust_pod_ids``: for tools that stand in for Airflow (the command line's previews, the demo),
        the Airflow ids a pod states are taken as confirmed. Never for the hook Airflow calls, where
        they are the DAG author's to write (docs/threat-model.md)."""
        self.settings = settings if settings is not None else load_settings()
        self.trust_pod_ids = trust_pod_ids
        self.client = DecisionClient(self.settings)
        self._metrics = metrics
        self._local = threading.local()
        self._params = "provenance=true" if self.settings.provenance else ""
        self._bundles_ready = False
        self._said_off = False

    def close(self) -> None:
        self.client.close()

    def __call__(self, pod: Any) -> None:
        """Airflow's ``pod_mutation_hook``: mutate ``pod`` in place or raise (see the README's contract).

        Only :class:`OpaMutationError` subclasses leave it: whatever else a hostile pod object makes
        Python raise (a ``__str__`` that raises, nesting past the recursion limit) is the pod's fault and
        a :class:`PatchRejected`, in both fail modes.
        """
        if self.settings.mode == "off":
            self._say_off()
            return
        try:
            if self._already_applied(pod):
                return
            outcome = self.evaluate(pod)
            self._act(pod, outcome)
        except OpaMutationError:
            raise
        except Exception as exc:
            raise _unreadable(exc, None, self.settings.decision_path) from None

    # -- evaluation (no side effects on the pod) ------------------------------------------------------

    def evaluate(self, pod: Any, *, mode: str | None = None) -> Outcome:
        """Ask OPA about ``pod`` and compute the patched pod, without touching ``pod``.

        Failures are returned in ``Outcome.error`` rather than raised, so callers choose the policy.
        """
        started = time.perf_counter()
        decision_path = self.settings.decision_path
        # The kill switch stops the hook acting (__call__); a tool evaluating explicitly asks as enforce.
        mode = "enforce" if (mode or self.settings.mode) == "off" else (mode or self.settings.mode)
        ref = PodRef(None, None)
        outcome = Outcome(pod=ref, request_uid=str(uuid.uuid4()), mode=mode)
        try:
            try:
                namespace, name, labels, annotations = _pod_codec.pod_ref_fields(pod)
                context = airflow_context(labels, annotations, trust_pod=self.trust_pod_ids)
                ref = outcome.pod = PodRef(
                    escape(namespace) if namespace else None, escape(name) if name else None, describe(context)
                )
                outcome.airflow = context
            except Exception as exc:
                raise _unreadable(exc, ref, decision_path) from None
            try:
                if not isinstance(pod, k8s.V1Pod):
                    raise _pod_codec.DecodeError(f"expected a kubernetes V1Pod, got {type(pod).__name__}")
                doc = _pod_codec.encode(pod)
                pod_json = _json.dumps(doc)
            except _pod_codec.DecodeError as exc:
                raise PatchRejected(
                    f"the pod cannot be serialized: {exc}", pod=ref, decision_path=decision_path
                ) from None
            except (TypeError, ValueError, OverflowError, RecursionError) as exc:
                raise PatchRejected(
                    f"the pod cannot be serialized: not valid JSON ({type(exc).__name__}: {exc})",
                    pod=ref,
                    decision_path=decision_path,
                ) from None
            outcome.before = doc
            _limits.check(doc, len(pod_json), self.settings, pod=ref)
            rest = _json.dumps(
                {"airflow": context, "request": {"uid": outcome.request_uid, "version": __version__, "mode": mode}}
            )
            self._check_bundles(ref)
            try:
                # {"input": {"pod": <the pod JSON measured above>, "airflow": ..., "request": ...}}
                response = self.client.post(
                    b'{"input":{"pod":' + pod_json + b"," + rest[1:] + b"}", params=self._params, pod=ref
                )
            except OpaUnavailable:
                self._bundles_ready = False  # OPA may come back without its bundle: check again
                raise
            decision = parse_decision(response.body, pod=ref, decision_path=decision_path)
            outcome.decision = decision
            if decision.deny:
                raise PodDenied(decision.deny, pod=ref, decision_path=decision_path)
            if decision.patch or (decision.exemptions and self.settings.audit_annotation):
                self._patch(outcome, doc, decision, pod)
            else:
                outcome.after = doc
        except OpaMutationError as exc:
            outcome.error = exc
        except Exception as exc:  # a hostile value deep in the pod: never an untyped error
            outcome.error = _unreadable(exc, ref, decision_path)
        finally:
            outcome.duration = time.perf_counter() - started
        return outcome

    def _patch(self, outcome: Outcome, doc: dict[str, Any], decision: Decision, pod: Any) -> None:
        """Patch a copy of ``doc`` (it stays what Airflow gave us), judge the change, annotate it for
        the audit, then build the ``V1Pod``: once, with the annotation, checking only what was written."""
        ref, decision_path = outcome.pod, self.settings.decision_path
        after, roots = _patch_engine.patch(
            doc,
            decision.patch,
            protected_labels=self.settings.all_protected_labels,
            max_ops=self.settings.max_patch_ops,
            pod=ref,
            decision_path=decision_path,
        )
        outcome.changed = _patch_engine.differs(doc, after, roots)
        # A pod exemptions let through is annotated even when the patch left it alone (_audit.py).
        if (outcome.changed or decision.exemptions) and self.settings.audit_annotation:
            roots = sorted({*roots, _audit.annotate(after, decision, outcome.request_uid)})
            outcome.annotated = not outcome.changed
        outcome.new_pod = _patch_engine.to_pod(
            after, decision.patch, roots, pod=ref, decision_path=decision_path, base=(doc, pod)
        )
        outcome.after = after

    def _check_bundles(self, ref: PodRef) -> None:
        """With ``require_bundles``, refuse to use an OPA that has not activated its bundles yet.

        An OPA starting up, or refusing a badly signed bundle, serves an empty policy set; its answers
        would be undefined decisions at best. Checked on the first call and after every failure.
        """
        if not self.settings.require_bundles or self._bundles_ready:
            return
        self.client.require_bundles(pod=ref)
        self._bundles_ready = True

    # -- acting on an outcome ---------------------------------------------------------------------------

    def _act(self, pod: Any, outcome: Outcome) -> None:
        decision = outcome.decision
        if decision is not None:
            for message in decision.warn:
                log.warning("policy warning for %s: %s", outcome.pod, _line(message))
        error = outcome.error
        if outcome.mode == "dry-run":
            if isinstance(error, PodDenied):
                self._count(outcome, "would_deny", "dry_run", "would_deny")
                self._record_denial(outcome, error)
            elif error is not None:  # OPA down, or a pod that cannot be judged: as visible as in enforce
                self._count(outcome, "error", "dry_run", "errors")
            else:
                result = "would_change" if outcome.changed else "no_change"
                self._count(outcome, result, "dry_run", *(("would_change",) if outcome.changed else ()))
            self._log_dry_run(outcome)
            return
        if isinstance(error, PodDenied):
            log.error("%s", _line(error))
            self._count(outcome, "denied", "denied")
            self._record_denial(outcome, error)
            self._log_summary(outcome, "denied")
            raise error
        if error is not None:
            # Only an OPA that cannot be asked may be bypassed; a pod that cannot be judged never is.
            if self.settings.fail_mode == "open" and isinstance(error, OpaUnavailable):
                # Always logged and counted: a pod that made OPA unavailable must not pass unseen.
                log.error("fail_mode=open, letting the pod through unchanged: %s", _line(error))
                self._count(outcome, "failed_open", "errors", "failed_open")
                self._log_summary(outcome, "failed-open")
                return
            self._count(outcome, "error", "errors")
            self._log_summary(outcome, "failed")
            raise error
        if outcome.new_pod is not None and (outcome.changed or outcome.annotated):
            _pod_codec.swap_in(pod, outcome.new_pod)
            outcome.applied = outcome.changed  # an audit annotation alone is no mutation
            self._remember(pod, outcome.after)
        result = "applied" if outcome.applied else "unchanged"
        self._count(outcome, result, result)
        self._log_summary(outcome, "mutated" if outcome.applied else "unchanged")

    def _record_denial(self, outcome: Outcome, error: PodDenied) -> None:
        """On the executor path, the reason in the denied task try's event log (``_task_events``)."""
        decision = outcome.decision
        _task_events.record(
            error,
            dry_run=outcome.mode == "dry-run",
            request_uid=outcome.request_uid,
            decision_id=decision.decision_id if decision else None,
        )

    def _log_summary(self, outcome: Outcome, verdict: str) -> None:
        decision = outcome.decision
        ops = len(decision.patch) if decision else 0
        policies = ",".join(decision.policies) if decision else ""
        decision_id = decision.decision_id if decision and decision.decision_id else "-"
        revision = _audit.revision(decision) if decision else None
        ids = " ".join(f"{key}={value}" for key, value in outcome.pod.airflow)
        log.info(
            "opa_mutation %s pod=%s/%s %s request_uid=%s decision_id=%s%s ops=%d policies=%s duration_ms=%.2f",
            verdict,
            outcome.pod.namespace or "-",
            outcome.pod.name or "-",
            ids or "airflow=unknown",
            outcome.request_uid,
            decision_id,
            f" revision={revision}" if revision else "",
            ops if outcome.applied else 0,
            policies or "-",
            outcome.duration * 1000,
        )
        self._timing(outcome)

    def _log_dry_run(self, outcome: Outcome) -> None:
        error = outcome.error
        if isinstance(error, PodDenied):
            log.warning("dry-run: would deny %s", _line(error))
        elif error is not None:
            log.error("dry-run: evaluation failed (the pod goes on unchanged): %s", _line(error))
        elif outcome.changed:
            log.info("dry-run: would change %s:\n%s", outcome.pod, outcome.diff())
        else:
            log.info("dry-run: no change for %s", outcome.pod)
        self._log_summary(outcome, "dry-run")

    # -- double registration (entry point and airflow_local_settings.py) -------------------------------

    def _already_applied(self, pod: Any) -> bool:
        """True when this very pod object was mutated by this hook a moment ago and is unchanged since.

        Airflow calls every registered implementation in turn on the same object; when the hook is
        registered twice (entry point *and* airflow_local_settings.py) the second call must not patch
        and audit the pod a second time.
        """
        last = getattr(self._local, "last", None)
        if last is None or last[0] is not pod:
            return False
        self._local.last = None
        try:
            if _pod_codec.encode(pod) != last[1]:
                return False
        except _pod_codec.DecodeError:
            return False
        log.warning(
            "airflow_opa_mutation's pod_mutation_hook ran twice on the same pod: it is registered more than "
            "once (the airflow.policy entry point and airflow_local_settings.py?). Skipping the second "
            "application; remove one registration."
        )
        return True

    def _remember(self, pod: Any, after: dict[str, Any] | None) -> None:
        self._local.last = (pod, after)

    # -- metrics ------------------------------------------------------------------------------------------

    def _say_off(self) -> None:
        """``mode = off``, the kill switch: said once per hook (a benign race may say it twice)."""
        if not self._said_off:
            self._said_off = True
            log.warning(
                "opa_mutation mode=off: pods are not evaluated nor mutated, OPA is not asked and nothing is "
                "counted, until [opa_mutation] mode is set back to enforce or dry-run"
            )

    def _count(self, outcome: Outcome, result: str, *counters: str) -> None:
        """Each counter once, tagged with the mode and the pod's result (``result``); then, per policy the
        decision names, ``opa_mutation.policy`` tagged with what it asked for (deny, patch, warn)."""
        outcome.result = result
        if self._metrics is None:
            return
        for counter in counters:
            self._emit("incr", f"opa_mutation.{counter}", tags={"mode": outcome.mode, "outcome": result})
        decision = outcome.decision
        if decision is None:
            return
        asked = (
            ("deny", [message.policy for message in decision.deny]),
            ("patch", list(decision.policies)),
            ("warn", [message.policy for message in decision.warn]),
        )
        for what, policies in asked:
            for policy in dict.fromkeys(_policy_tag(name) for name in policies if name):
                self._emit(
                    "incr", "opa_mutation.policy", tags={"mode": outcome.mode, "outcome": what, "policy": policy}
                )

    def _timing(self, outcome: Outcome) -> None:
        tags = {"mode": outcome.mode, "outcome": outcome.result}
        self._emit("timing", "opa_mutation.duration", outcome.duration * 1000, tags=tags)

    def _emit(self, kind: str, name: str, *args: Any, tags: dict[str, str] | None) -> None:
        if self._metrics is None:
            return
        try:
            self._metrics(kind, name, *args, tags=tags)
        except Exception:  # metrics never decide a pod's fate
            log.debug("metrics callback failed", exc_info=True)


_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def _policy_tag(name: str) -> str:
    """A policy name as a tag value: statsd's InfluxDB tags drop values with ',' or '=', so only the
    characters Airflow allows in stat names, and a bounded length (names come from the policies)."""
    return _TAG_UNSAFE.sub("_", name)[:63]


def _line(value: object) -> str:
    """A message for one log line: what policy messages echo of the pod cannot break it."""
    return escape(str(value), limit=16384)


def _unreadable(exc: BaseException, ref: PodRef | None, decision_path: str) -> PatchRejected:
    """The error for a pod object Python itself fails on (its own ``str()`` is not trusted either)."""
    return PatchRejected(f"the pod cannot be read: {type(exc).__name__}", pod=ref, decision_path=decision_path)


# -- the process-wide hook Airflow calls ---------------------------------------------------------------

_default: MutationHook | None = None
_default_lock = threading.Lock()


def default_hook() -> MutationHook:
    """The process-wide hook, built from the configuration on first use."""
    global _default  # noqa: PLW0603
    hook = _default
    if hook is None:
        with _default_lock:
            if _default is None:
                _default = MutationHook(metrics=_airflow_stats())
            hook = _default
    return hook


def configure(settings: Settings | None = None) -> MutationHook:
    """Replace the process-wide hook (re-reading the configuration when ``settings`` is None)."""
    global _default
    with _default_lock:
        old, _default = _default, MutationHook(settings, metrics=_airflow_stats())
    if old is not None:
        old.close()
    return _default


def pod_mutation_hook(pod: Any) -> None:
    """Airflow's pod mutation hook: evaluate ``pod`` against OPA and mutate it in place, or raise."""
    default_hook()(pod)


def _airflow_stats() -> Callable[..., None] | None:
    """Airflow's ``Stats`` when this process runs Airflow; metrics are optional and never fail a pod.

    The task SDK's copy is the one Airflow configures in the scheduler and in workers alike (the core
    copy is set up only in server components), so it is preferred.
    """
    if "airflow" not in sys.modules:  # not inside Airflow: don't pay ~3 s to import it for metrics
        return None
    stats: Any = None
    for module in ("airflow.sdk.observability.stats", "airflow.observability.stats"):
        try:
            stats = importlib.import_module(module).Stats
            break
        except (ImportError, AttributeError):
            continue
    if stats is None:
        return None

    def emit(kind: str, name: str, *args: Any, tags: dict[str, str] | None = None) -> None:
        try:
            getattr(stats, kind)(name, *args, tags=tags)
        except Exception:  # a broken metrics backend must not block pods
            log.debug("metrics backend failed", exc_info=True)

    return emit


__all__ = [
    "AUDIT_ANNOTATION",  # defined in _audit; importable from here as before
    "MutationHook",
    "Outcome",
    "configure",
    "default_hook",
    "pod_mutation_hook",
]
