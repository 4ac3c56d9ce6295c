"""A pod whose template lacks the OPA sidecar (a custom podTemplate or a task's own pod_template_file): the
hook's url, the sidecar's loopback address, has nothing listening (issue 25, item 14).

The error must say so plainly (the url, the missing sidecar, where the docs say what to add) and arrive
within the configured deadline: checked through the client's own clock (tests/clientprobe.py), never
with a stopwatch. With ``require_bundles`` (the shipped values) the first thing asked is /health, a
single attempt under ``timeout``, so it must say the same.
"""

from __future__ import annotations

import pytest

from airflow_opa_mutation.cli._local_opa import free_port

from .conftest import call_failing

TIMEOUT = 0.5


def hint(url: str) -> str:
    return f"no OPA sidecar answering at {url}: does this pod's template include the sidecar? (docs/helm.md)"


@pytest.mark.parametrize("fail_mode", ["closed", "open"])
def test_no_sidecar_on_loopback_is_named_within_the_deadline(make_hook, pod, errors_log, client_probe, fail_mode):
    url = f"http://127.0.0.1:{free_port()}"  # where the sidecar would listen: nothing does
    hook = make_hook(url, timeout=TIMEOUT, fail_mode=fail_mode)
    _, text = call_failing(hook, pod, fail_mode, errors_log, "cannot connect to OPA")
    assert hint(url) in text, text
    call = client_probe.decision()
    call.assert_bounded()  # every attempt under the one deadline: no hang
    call.assert_gave_up_at_the_deadline()


def test_no_sidecar_with_require_bundles_is_named_at_once(make_hook, pod, errors_log, client_probe):
    url = f"http://localhost:{free_port()}"
    hook = make_hook(url, timeout=TIMEOUT, require_bundles=True)
    _, text = call_failing(hook, pod, "closed", errors_log, "cannot connect to OPA")
    assert hint(url) in text, text
    assert client_probe.calls == [], "refused at the bundle check: no decision call, no retries"


def test_a_remote_opa_that_refuses_gets_no_sidecar_hint(make_hook, pod, errors_log, client_probe):
    """Only a loopback url is a sidecar; a central OPA that is down is just unreachable."""
    url = f"http://127.0.0.2.nip.invalid:{free_port()}"
    hook = make_hook(url, timeout=TIMEOUT)
    _, text = call_failing(hook, pod, "closed", errors_log, "cannot connect to OPA")
    assert "sidecar" not in text, text
    client_probe.decision().assert_bounded()
