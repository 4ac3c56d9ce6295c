"""Installing the package: it is not on any index, so the docs and deploy/airflow/Dockerfile build its wheel
and install it next to a pinned apache-airflow. The wheel is built here from exactly what the Dockerfile
copies into its build stage (uv, as installed by scripts/setup-python, stands in for `pip wheel`)."""

from __future__ import annotations

import re
import shutil
import subprocess
import zipfile
from pathlib import Path

from .conftest import REPO
from .test_compose import pinned

DOCKERFILE = REPO / "deploy" / "airflow" / "Dockerfile"
UV = REPO / ".tools" / "bin" / "uv"


def _instructions() -> list[str]:
    """Dockerfile instructions, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_the_image_installs_the_wheel_with_apache_airflow_pinned_to_its_own_version():
    instructions = _instructions()
    version = pinned("AIRFLOW_VERSION")
    assert [i for i in instructions if i.startswith("FROM")] == [f"FROM apache/airflow:{version} AS wheel",
                                                                  f"FROM apache/airflow:{version}"]
    [install] = [i for i in instructions if "pip install" in i]
    assert f'"apache-airflow=={version}"' in install, "Airflow pinned on the same pip install line"
    assert re.search(r"/tmp/wheels/airflow_opa_mutation-\*\.whl\)\[fast,cli\]", install), install
    assert any(i.startswith("RUN pip wheel") and "--no-deps" in i for i in instructions)


def test_the_wheel_builds_from_what_the_dockerfile_copies_and_registers_the_hook(tmp_path: Path):
    assert UV.exists(), "no uv: run scripts/setup-python (it links the pinned uv into .tools/bin)"
    context = tmp_path / "src"
    context.mkdir()
    for instruction in _instructions():
        if instruction.startswith("COPY --chown") and "--from" not in instruction:
            *sources, _target = instruction.split()[2:]
            for source in sources:
                path = REPO / source
                if path.is_dir():
                    shutil.copytree(path, context / source, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
                else:
                    shutil.copy(path, context / source)
    out = tmp_path / "dist"
    done = subprocess.run([str(UV), "build", "--wheel", "--out-dir", str(out), str(context)],
                          check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    [wheel] = out.glob("airflow_opa_mutation-*-py3-none-any.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert "airflow_opa_mutation/hook.py" in names and "airflow_opa_mutation/plugin.py" in names
        [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        text = archive.read(entry_points).decode()
    assert "[airflow.policy]\nairflow_opa_mutation = airflow_opa_mutation.plugin" in text


def test_the_docs_say_how_to_build_and_ship_the_wheel():
    readme = (REPO / "README.md").read_text()
    assert "pip install airflow-opa-mutation " not in readme and "\npip install airflow-opa-mutation\n" not in readme
    assert "deploy/airflow/Dockerfile" in readme and "pip wheel" in readme
