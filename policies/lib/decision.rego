# METADATA
# title: The decision the Airflow hook asks for
# description: |
#   POST /v1/data/airflow/pod/decision with input {"pod", "airflow", "request"}
#   returns {"patch": [...], "deny": [...], "warn": [...]}. The package holds
#   only these three rules, so the package document is the decision.
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
