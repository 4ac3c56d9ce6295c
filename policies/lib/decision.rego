# METADATA
# title: The decision the Airflow hook asks for
# description: |
#   POST /v1/data/airflow/pod/decision with input {"pod", "airflow", "request"}
#   returns {"patch": [...], "deny": [...], "warn": [...]}, and "exemptions"
#   when exemptions applied to the pod. The package holds only these rules,
#   so the package document is the decision.
# scope: package
# entrypoint: true
package airflow.pod.decision

import data.airflow.pod.lib.framework

# METADATA
# title: Patch
# description: RFC 6902 operations against input.pod, each tagged with "policy", in decision order.
patch := framework.patch

# METADATA
# title: Deny
# description: |
#   [{"msg", "policy"}], judged on the patched pod; non-empty means the hook
#   refuses the pod.
deny := framework.deny

# METADATA
# title: Warn
# description: '[{"msg", "policy"}], judged on the patched pod; the hook logs them.'
warn := framework.warn

# METADATA
# title: Exemptions
# description: |
#   [{"name", "policy", "reason", "ticket", "expires"}]: the exemptions that
#   applied to the pod (lib/framework.rego, applied_exemptions); absent when
#   none did, so the common decision stays three members.
exemptions := framework.applied_exemptions if count(framework.applied_exemptions) > 0
