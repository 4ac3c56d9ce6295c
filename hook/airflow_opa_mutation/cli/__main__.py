"""``python -m airflow_opa_mutation.cli``: the console script ``airflow-opa-mutation`` with a chosen Python."""

from . import main

main()
