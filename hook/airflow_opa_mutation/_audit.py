"""The audit trail a mutation leaves: an annotation on the changed pod and the revision in the log line.

A pod changed by policy carries, under :data:`AUDIT_ANNOTATION`, which request and decision changed it
and which policies (at which bundle revision) did, so the change can be traced from the pod alone: from
``kubectl get pod -o yaml`` back to OPA's decision log. Written only on a pod the patch really changed,
or that exemptions let through (below).
``layer`` says who changed it: ``hook`` here; the admission webhook (policies/lib/admission.rego) writes
``admission`` on a pod it had to change, so the pods the hook never saw stand out.

A pod that exemptions let past some or all policies is annotated too, changed by the patch or not: the
record's ``exemptions`` lists where each is configured (``exempt.<name>``,
``policies.<policy>.exempt.<name>``), at most :data:`MAX_EXEMPTIONS` of them, each cut to
:data:`MAX_EXEMPTION_CHARS`, so the annotation stays small. The owner's text (reason, ticket, expiry)
stays in the decision and OPA's decision log: the pod's annotations are readable by whoever can read
the pod.
"""

from __future__ import annotations

import json
from typing import Any

from .decision import Decision

AUDIT_ANNOTATION = "airflow-opa-mutation/decision"

#: The record's ``layer``: this hook (the admission webhook's records say ``admission``).
LAYER = "hook"

#: At most this many exemptions are named in the record (then "... and N more").
MAX_EXEMPTIONS = 8
#: Each exemption's key is cut to this many characters.
MAX_EXEMPTION_CHARS = 120

#: The subtree :func:`annotate` writes in; the pod's validation must check it like the patched ones.
ANNOTATIONS_ROOT = "/metadata/annotations"


def annotate(doc: dict[str, Any], decision: Decision, request_uid: str) -> str:
    """Write the audit record into the pod document ``doc`` (its root only is changed in place); returns
    the subtree it wrote in."""
    record: dict[str, Any] = {"layer": LAYER, "request_uid": request_uid, "policies": list(decision.policies)}
    if decision.exemptions:
        record["exemptions"] = exemption_keys(decision)
    if decision.decision_id:
        record["decision_id"] = decision.decision_id
    bundle_revision = revision(decision)
    if bundle_revision:
        record["revision"] = bundle_revision
    # ``doc`` shares the containers the patch left alone with the pod as it came in: copy the two it
    # writes in rather than change the input's.
    metadata = doc.get("metadata")
    metadata = doc["metadata"] = dict(metadata) if isinstance(metadata, dict) else {}
    annotations = metadata.get("annotations")
    annotations = metadata["annotations"] = dict(annotations) if isinstance(annotations, dict) else {}
    annotations[AUDIT_ANNOTATION] = json.dumps(record, separators=(",", ":"), sort_keys=True)
    return ANNOTATIONS_ROOT


def revision(decision: Decision) -> str | None:
    """The policy revision OPA reported (``?provenance=true``): its own, or ``bundle@revision`` for each."""
    own = decision.provenance.get("revision")
    if isinstance(own, str) and own:
        return own
    bundles = decision.provenance.get("bundles")
    if isinstance(bundles, dict):
        revisions = sorted(f"{name}@{info.get('revision')}" for name, info in bundles.items() if isinstance(info, dict))
        return ",".join(revisions) or None
    return None


def exemption_keys(decision: Decision) -> list[str]:
    """The exemptions that applied, compact and bounded (see the module docstring)."""
    keys = [_cut(e.key) for e in decision.exemptions[:MAX_EXEMPTIONS]]
    if len(decision.exemptions) > MAX_EXEMPTIONS:
        keys.append(f"... and {len(decision.exemptions) - MAX_EXEMPTIONS} more")
    return keys


def _cut(text: str) -> str:
    return text if len(text) <= MAX_EXEMPTION_CHARS else text[: MAX_EXEMPTION_CHARS - 3] + "..."
