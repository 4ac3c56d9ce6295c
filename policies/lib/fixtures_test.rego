package airflow.pod.lib.fixtures_test

# Pods and helpers shared by the policy tests. The pods look like the ones
# Airflow 3 builds: KubernetesExecutor workers and KubernetesPodOperator pods,
# with Airflow's labels and the `base` container.

ke_airflow := {
	"dag_id": "etl_daily",
	"task_id": "load_warehouse",
	"run_id": "scheduled__2026-11-24T00:00:00+00:00",
	"try_number": 1,
	"map_index": -1,
	"launcher": "kubernetes_executor",
}

kpo_airflow := {
	"dag_id": "ml.train",
	"task_id": "fit_model",
	"run_id": "manual__2026-11-25T08:30:00+00:00",
	"try_number": 2,
	"map_index": 3,
	"launcher": "kubernetes_pod_operator",
}

# A KubernetesExecutor worker pod as Airflow sends it: nothing hardened.
worker_pod := {
	"apiVersion": "v1",
	"kind": "Pod",
	"metadata": {
		"name": "etl-daily-load-warehouse-5k2x9qzt",
		"namespace": "airflow",
		"labels": {
			"airflow-worker": "17",
			"airflow_version": "3.0.2",
			"dag_id": "etl_daily",
			"kubernetes_executor": "True",
			"map_index": "-1",
			"run_id": "scheduled__2026-11-24T0000000000-8f1c2d3e4",
			"task_id": "load_warehouse",
			"try_number": "1",
		},
		"annotations": {
			"dag_id": "etl_daily",
			"task_id": "load_warehouse",
			"run_id": "scheduled__2026-11-24T00:00:00+00:00",
			"try_number": "1",
		},
	},
	"spec": {
		"containers": [{
			"name": "base",
			"image": "apache/airflow:3.0.2",
			"args": ["python", "-m", "airflow.sdk.execution_time.execute_workload", "--json-string", "{}"],
			"env": [{"name": "AIRFLOW_IS_K8S_EXECUTOR_POD", "value": "True"}],
		}],
		"restartPolicy": "Never",
		"serviceAccountName": "airflow-worker",
	},
}

# A KubernetesPodOperator pod with an init container.
kpo_pod := {
	"apiVersion": "v1",
	"kind": "Pod",
	"metadata": {
		"name": "fit-model-3f9a1c2b",
		"namespace": "ml-jobs",
		"labels": {
			"airflow_kpo_in_cluster": "True",
			"airflow_version": "3.0.2",
			"dag_id": "ml.train",
			"kubernetes_pod_operator": "True",
			"map_index": "3",
			"run_id": "manual__2026-11-25T0830000000-5b7e9a1c2",
			"task_id": "fit_model",
			"try_number": "2",
		},
	},
	"spec": {
		"initContainers": [{"name": "fetch-data", "image": "quay.io/acme/fetcher:1.4"}],
		"containers": [{
			"name": "base",
			"image": "python:3.11-slim",
			"command": ["python", "-c"],
			"args": ["print('training')"],
		}],
		"restartPolicy": "Never",
	},
}

# What the shipped defaults add to a container without a securityContext.
hardened_context := {
	"allowPrivilegeEscalation": false,
	"capabilities": {"drop": ["ALL"]},
	"runAsNonRoot": true,
	"seccompProfile": {"type": "RuntimeDefault"},
}

# What the shipped defaults add to a pod without a securityContext.
pod_context := {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}}

# worker_pod after the shipped defaults.
hardened_pod := json.patch(worker_pod, [
	{"op": "add", "path": "/spec/containers/0/securityContext", "value": hardened_context},
	{"op": "add", "path": "/spec/securityContext", "value": pod_context},
	{"op": "add", "path": "/spec/automountServiceAccountToken", "value": false},
])

# The patch operations of one policy in a decision.
ops_of(d, policy) := [object.remove(op, ["policy"]) | some op in d.patch; op.policy == policy]

# Messages of one policy in a list of decision messages.
msgs_of(list, policy) := [m.msg | some m in list; m.policy == policy]

# Enable a policy with parameters.
enable(policy, params) := {"policies": {policy: {"enabled": true, "params": params}}}

# Set parameters of a policy, leaving its enabled flag alone.
params(policy, values) := {"policies": {policy: {"params": values}}}

# pod with value added at path.
put(pod, path, value) := json.patch(pod, [{"op": "add", "path": path, "value": value}])
