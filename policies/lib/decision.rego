# METADATA
# title: The decision the Airflow hook asks for
# description: |
#   POST /v1/data/airflow/pod/decision with input {"pod", "airflow", "request"}
#   returns {"patch": [...], "deny": [...], "warn": [...]}. The package holds
#   only these three rules, so the package document is the decision.
# scope: package
# entrypoint: true
package airflow.pod.decision # regal ignore:directory-package-mismatch

# (The folder is lib/, not airflow/pod/decision/: see policies/README.md, "Checks".)

import data.airflow.pod.lib.framework

# RFC 6902 operations, each tagged with "policy", in decision order.
patch := framework.patch

# [{"msg", "policy"}], judged on the patched pod.
deny := framework.deny

# [{"msg", "policy"}], judged on the patched pod.
warn := framework.warn
