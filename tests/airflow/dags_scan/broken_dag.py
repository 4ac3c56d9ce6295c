"""A DAG file that fails to import: `scan` reports it and goes on (airflow DAG)."""

import module_that_does_not_exist  # noqa: F401
from airflow.sdk import DAG

with DAG("broken", schedule=None):
    pass
