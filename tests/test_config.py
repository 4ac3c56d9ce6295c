"""Configuration: env over airflow.cfg over defaults; every bad value is a ConfigError naming key and value."""

from __future__ import annotations

import pytest

from airflow_opa_mutation import ConfigError, Settings, load_settings
from airflow_opa_mutation.config import AIRFLOW_LABELS, KEYS, read_raw


class FakeAirflowConf:
    """Stands in for airflow.configuration.conf's lookup API (the real one is tested in tests/airflow)."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def has_option(self, section: str, key: str) -> bool:
        return section == "opa_mutation" and key in self.values

    def get(self, section: str, key: str) -> str:
        return self.values[key]


def test_defaults():
    s = load_settings(environ={}, airflow_conf=FakeAirflowConf({}))
    assert s == Settings()
    assert (s.url, s.decision_path, s.timeout, s.fail_mode, s.mode) == (
        "http://127.0.0.1:8181", "airflow/pod/decision", 2.0, "closed", "enforce")
    assert s.all_protected_labels == AIRFLOW_LABELS


def test_env_overrides_airflow_cfg_which_overrides_default(tmp_path):
    conf = FakeAirflowConf({"url": "http://cfg:8181", "timeout": "5", "fail_mode": "open"})
    env = {"AIRFLOW__OPA_MUTATION__URL": "https://env:8443/", "AIRFLOW__OPA_MUTATION__PROTECTED_LABELS": "team, cost-center"}
    sources = read_raw(env, conf)
    assert sources["url"].origin == "env"
    assert sources["timeout"].origin == "airflow.cfg"
    assert sources["mode"].origin == "default"
    s = load_settings(env, conf)
    assert s.url == "https://env:8443"  # trailing slash dropped
    assert s.timeout == 5.0
    assert s.fail_mode == "open"
    assert s.protected_labels == ("team", "cost-center")
    assert s.all_protected_labels[-2:] == ("team", "cost-center")


def test_env_alone_works_without_airflow():
    s = load_settings({"AIRFLOW__OPA_MUTATION__MODE": "DRY-RUN", "AIRFLOW__OPA_MUTATION__DECISION_PATH": "/x/y/"}, FakeAirflowConf({}))
    assert s.mode == "dry-run"
    assert s.decision_path == "x/y"


def test_mode_off_the_kill_switch_from_env_or_airflow_cfg():
    """``mode = off`` (issue 25, item 13): the operator's environment or airflow.cfg turns the hook off."""
    assert load_settings({"AIRFLOW__OPA_MUTATION__MODE": "OFF"}, FakeAirflowConf({})).mode == "off"
    assert load_settings({}, FakeAirflowConf({"mode": "off"})).mode == "off"
    assert load_settings({"AIRFLOW__OPA_MUTATION__MODE": "enforce"}, FakeAirflowConf({"mode": "off"})).mode == "enforce"
    assert Settings(mode="off").mode == "off"


def test_mode_off_holds_when_the_rest_of_the_configuration_is_broken(tmp_path):
    """The incident the switch is for may be the configuration itself (a token file that is no longer
    mounted, a bad url): with ``mode = off`` a bad value elsewhere does not stop the hook from standing
    down; with any other mode it is still a ConfigError."""
    broken = {"AIRFLOW__OPA_MUTATION__TOKEN_FILE": str(tmp_path / "unmounted"), "AIRFLOW__OPA_MUTATION__TIMEOUT": "soon"}
    assert load_settings({**broken, "AIRFLOW__OPA_MUTATION__MODE": "off"}, FakeAirflowConf({})).mode == "off"
    assert load_settings(broken, FakeAirflowConf({"mode": "off"})).mode == "off"
    with pytest.raises(ConfigError):
        load_settings({**broken, "AIRFLOW__OPA_MUTATION__MODE": "dry-run"}, FakeAirflowConf({}))


@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [
        ("url", "ftp://opa", "expected http"),
        ("url", "http://", "expected http"),
        ("url", "http://opa:99999", "port"),
        ("url", "http://opa?x=1", "query"),
        ("decision_path", "a//b", "path like"),
        ("timeout", "soon", "number of seconds"),
        ("timeout", "0", "positive"),
        ("timeout", "-1", "positive"),
        ("timeout", "inf", "positive"),
        ("fail_mode", "maybe", "closed, open"),
        ("mode", "audit", "enforce, dry-run, off"),
        ("token_file", "/no/such/token", "no such file"),
        ("ca_bundle", "/no/such/ca.pem", "no such file"),
        ("max_patch_ops", "0", "at least 1"),
        ("breaker_threshold", "many", "whole number"),
        ("audit_annotation", "perhaps", "true or false"),
        ("protected_labels", "team, cost center", "not a label key"),
    ],
)
def test_bad_values_name_the_key_and_value(key, value, needle):
    with pytest.raises(ConfigError) as raised:
        load_settings({f"AIRFLOW__OPA_MUTATION__{key.upper()}": value}, FakeAirflowConf({}))
    message = str(raised.value)
    assert f"[opa_mutation] {key} = {value!r}" in message
    assert needle in message
    assert raised.value.key == key


# Kubernetes' label-key rule (apimachinery validation.IsQualifiedName): [prefix "/"] name, name <= 63
# characters of [-A-Za-z0-9_.] starting and ending alphanumeric, prefix a lowercase DNS subdomain <= 253.
PREFIX_253 = ".".join(["a" * 63] * 4)[:253]


@pytest.mark.parametrize(
    "label",
    [
        "a",
        "team",
        "Team_2.x-y",
        "n" * 63,
        "example.com/team",
        f"{PREFIX_253}/{'n' * 63}",  # 317 characters: the longest key Kubernetes accepts
        "1-2/3",
    ],
)
def test_label_keys_kubernetes_accepts(label):
    assert load_settings({"AIRFLOW__OPA_MUTATION__PROTECTED_LABELS": label}, FakeAirflowConf({})).protected_labels == (label,)
    assert Settings(protected_labels=(label,)).protected_labels == (label,)


@pytest.mark.parametrize(
    ("label", "needle"),
    [
        ("n" * 64, "the name"),
        (f"{PREFIX_253}a/n", "the prefix"),  # 254-character prefix
        (f"{PREFIX_253}/{'n' * 64}", "the name"),  # 318 characters
        ("Example.com/team", "the prefix"),
        ("/team", "the prefix"),
        ("example.com/", "the name"),
        ("a/b/c", "one '/'"),
        ("-team", "the name"),
        ("team_", "the name"),
        ("te am", "the name"),
        ("tëam", "the name"),
    ],
)
def test_label_keys_kubernetes_refuses(label, needle):
    with pytest.raises(ConfigError, match="not a label key") as raised:
        load_settings({"AIRFLOW__OPA_MUTATION__PROTECTED_LABELS": f"ok, {label}"}, FakeAirflowConf({}))
    assert needle in str(raised.value)
    with pytest.raises(ConfigError, match="not a label key") as raised:
        Settings(protected_labels=(label,))
    assert raised.value.key == "protected_labels"
    assert raised.value.value == label


def test_conflicting_and_incomplete_tls_settings(tmp_path):
    token = tmp_path / "token"
    token.write_text("t")
    with pytest.raises(ConfigError, match="either token or token_file"):
        Settings(token="x", token_file=str(token))
    with pytest.raises(ConfigError, match="need an https:// url"):
        Settings(ca_bundle=str(token))
    with pytest.raises(ConfigError, match="client_key needs client_cert"):
        Settings(url="https://opa", client_key=str(token))


def test_every_key_is_documented_in_the_readme():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for key in KEYS:
        assert f"`{key}`" in readme, f"README's configuration table lacks {key}"


def test_token_is_not_in_repr():
    assert "s3cret" not in repr(Settings(token="s3cret"))
