"""The container files, checked without a Docker engine.

hadolint lints the Dockerfile, Debian's docker-compose validates and resolves the compose
file, and every `nightcast` invocation either file contains is run through the real CLI.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from sqlalchemy.engine import make_url

from job.cli import main
from job.config import load_settings
from tests.ports import free_port

pytestmark = pytest.mark.slow  # each test runs hadolint, docker-compose or a Dask scheduler

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
PASSWORD = "p@ss:w/rd?#1"  # what a password manager makes: URL metacharacters included


def _tool(name: str) -> str:
    # console scripts of the test extra (hadolint) live beside the interpreter
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    path = shutil.which(name, path=search)
    if path is None:
        pytest.fail(f"{name} is not installed (see README: Development)")
    return path


def _compose_config(env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    """`docker-compose config` seeing only `env`: neither the caller's shell nor a `.env`
    file that a user deploying from this checkout keeps beside the compose file."""
    files = [arg for name in ("docker-compose.yml", *extra) for arg in ("-f", str(ROOT / name))]
    with tempfile.TemporaryDirectory() as folder:  # docker-compose reads /dev/null as "no file given"
        empty = Path(folder) / "empty.env"
        empty.touch()
        options = ["--project-directory", str(ROOT), "--env-file", str(empty), *files, "--profile", "tools"]
        return subprocess.run(
            [_tool("docker-compose"), *options, "config"],
            env={"PATH": os.environ.get("PATH", ""), **env},
            capture_output=True,
            text=True,
            check=False,
        )


@pytest.fixture(scope="module")
def compose() -> dict:
    done = _compose_config({"POSTGRES_PASSWORD": PASSWORD})
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def _exec_form(instruction: str) -> list[str]:
    match = re.search(rf"^{instruction}\s+(\[.*\])\s*$", DOCKERFILE, re.MULTILINE)
    assert match, f"Dockerfile has no exec-form {instruction}"
    return json.loads(match.group(1))


def test_hadolint_is_clean() -> None:
    done = subprocess.run(
        [_tool("hadolint"), str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_runs_the_scheduler_as_a_non_root_user() -> None:
    assert _exec_form("ENTRYPOINT") == ["nightcast"]
    assert _exec_form("CMD") == ["schedule"]
    assert re.search(r"^USER\s+(?!root|0\b)\S+", DOCKERFILE, re.MULTILINE)
    assert "PYTHONUNBUFFERED=1" in DOCKERFILE
    # the dependency layer is built from pyproject.toml before the code is copied in
    assert DOCKERFILE.index("COPY pyproject.toml") < DOCKERFILE.index("COPY job")


def test_compose_requires_the_database_password() -> None:
    done = _compose_config({})
    assert done.returncode != 0
    assert "POSTGRES_PASSWORD" in done.stderr


def test_compose_services_are_wired_in_order(compose: dict) -> None:
    services = compose["services"]
    assert services["migrate"]["depends_on"]["db"]["condition"] == "service_healthy"
    assert services["scheduler"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["scheduler"]["restart"] == "unless-stopped"
    assert services["scheduler"]["init"] is True
    assert services["backfill"]["profiles"] == ["tools"]
    assert "pg_isready" in " ".join(services["db"]["healthcheck"]["test"])


def _invocations(compose: dict) -> list[list[str]]:
    """Every nightcast command line the image and the compose services would run."""
    entrypoint = _exec_form("ENTRYPOINT")
    healthcheck = re.search(r"HEALTHCHECK.*?CMD\s+(\[.*?\])", DOCKERFILE, re.DOTALL)
    assert healthcheck, "Dockerfile has no exec-form HEALTHCHECK"
    lines = [entrypoint + _exec_form("CMD"), json.loads(healthcheck.group(1))]
    for service in compose["services"].values():
        if service.get("image", "").startswith("nightcast"):
            lines.append(list(service.get("entrypoint", entrypoint)) + list(service.get("command", [])))
    lines.append(["nightcast", "backfill", "--tickers", "TSLA", "--start", "2024-01-02"])  # README one-off
    return lines


def test_every_container_command_is_a_real_cli_command(
    compose: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = _invocations(compose)
    assert {line[1] for line in lines} >= {"schedule", "migrate", "backfill", "health"}
    for line in lines:
        assert line[0] == "nightcast"
        args = [a for a in line[1:] if a != "--help"]
        assert main([*args, "--help"]) == 0, line
        assert "Usage" in capsys.readouterr().out


def test_compose_environment_gives_valid_settings(compose: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("migrate", "scheduler", "backfill"):
        for key, value in compose["services"][name]["environment"].items():
            monkeypatch.setenv(key, str(value))
        settings = load_settings()
        url = make_url(settings.database_url)
        assert (url.username, url.password, url.host, url.port) == ("nightcast", PASSWORD, "db", 5432)
        assert settings.safe_database_url == "postgresql+psycopg://nightcast:***@db:5432/nightcast"
        assert settings.tickers and settings.calendar == "XNYS"


def test_the_scale_file_runs_dask_workers_the_scheduler_sends_training_to() -> None:
    done = _compose_config({"POSTGRES_PASSWORD": PASSWORD}, "docker-compose.scale.yml")
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    worker, scheduler = services["worker"], services["scheduler"]
    assert worker["entrypoint"] == ["dask", "worker", "tcp://dask-scheduler:8786"]
    assert worker["command"][:2] == ["--nthreads", "1"] and "--memory-limit" in worker["command"]
    assert "NIGHTCAST_DATABASE_PASSWORD" not in worker.get(
        "environment", {}
    )  # workers never see the database
    assert scheduler["environment"]["NIGHTCAST_DASK_ADDRESS"] == "tcp://dask-scheduler:8786"
    assert scheduler["environment"]["NIGHTCAST_DATABASE_PASSWORD"] == PASSWORD  # the base file's, kept
    assert services["dask-scheduler"]["entrypoint"] == ["dask", "scheduler"]
    assert worker["healthcheck"]["test"] == ["NONE"]  # disabled: not the image's heartbeat check


def test_the_dask_scheduler_healthcheck_fails_without_it_and_passes_quietly_once_it_runs(
    tmp_path: Path,
) -> None:
    done = _compose_config({"POSTGRES_PASSWORD": PASSWORD}, "docker-compose.scale.yml")
    service = yaml.safe_load(done.stdout)["services"]["dask-scheduler"]
    kind, program, *args = service["healthcheck"]["test"]
    assert (kind, program) == ("CMD", "python")
    assert "localhost:8787/health" in args[-1] and service["command"][:2] == ["--port", "8786"]
    # The check and the scheduler as compose runs them, on ports free at this moment, so that
    # another run of these tests (or a Dask of the developer's) is neither in the way nor found.
    port, http = free_port(), free_port()
    check = [sys.executable, *args[:-1], args[-1].replace("8787", str(http))]
    command = ["--port", str(port), *service["command"][2:], "--dashboard-address", f"127.0.0.1:{http}"]
    assert subprocess.run(check, capture_output=True, timeout=30).returncode != 0
    log = tmp_path / "scheduler.log"
    with log.open("w") as out:
        scheduler = subprocess.Popen(
            [_tool(service["entrypoint"][0]), *service["entrypoint"][1:], *command],
            stdout=out,
            stderr=out,
        )
    try:
        for _ in range(60):
            if subprocess.run(check, capture_output=True, timeout=30).returncode == 0:
                break
            time.sleep(0.5)
        else:
            pytest.fail("the healthcheck never passed against a running dask scheduler")
    finally:
        scheduler.terminate()
        scheduler.wait(timeout=30)
    assert "handshake" not in log.read_text()  # a bare TCP probe logs a failed one each time


def test_env_example_documents_every_compose_variable() -> None:
    compose_text = (ROOT / "docker-compose.yml").read_text() + (ROOT / "docker-compose.scale.yml").read_text()
    variables = set(re.findall(r"\$\{(\w+)", compose_text))
    example = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^(\w+)=", example, re.MULTILINE))
    assert variables == documented


def test_the_python_requirement_is_true() -> None:
    """The code uses 3.11 APIs (datetime.UTC, tomllib): the metadata, the linter's target and
    the image agree on it."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["requires-python"] == ">=3.11"
    assert project["tool"]["ruff"]["target-version"] == "py311"
    assert re.search(r"^FROM python:3\.11", DOCKERFILE, re.MULTILINE)
    assert sys.version_info >= (3, 11)


def test_every_setting_reaches_the_containers_and_an_empty_one_means_its_default(
    compose: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    from job.config import Settings
    from job.forecast.params import ModelParams, RetrainPolicy

    inside = {"database_url", "database_password", "database_password_file", "heartbeat_file"}
    names = {f"NIGHTCAST_{n.upper()}" for n in Settings.model_fields.keys() - inside - {"model", "policy"}}
    names |= {f"NIGHTCAST_MODEL__{n.upper()}" for n in ModelParams.model_fields}
    names |= {f"NIGHTCAST_POLICY__{n.upper()}" for n in RetrainPolicy.model_fields}
    for service in ("migrate", "scheduler", "backfill", "report"):
        environment = compose["services"][service]["environment"]
        assert names <= environment.keys(), (service, names - environment.keys())
    for key, value in compose["services"]["scheduler"]["environment"].items():
        monkeypatch.setenv(key, str(value))
    assert load_settings().model == ModelParams()  # passed through empty: the defaults


def test_the_database_port_is_published_on_localhost_only(compose: dict) -> None:
    [port] = compose["services"]["db"]["ports"]
    published = port if isinstance(port, str) else f"{port['host_ip']}:{port['published']}:{port['target']}"
    assert published.startswith("127.0.0.1:") and published.split("/")[0].endswith(":5432")


def test_the_scale_files_backfill_trains_on_the_dask_workers() -> None:
    done = _compose_config({"POSTGRES_PASSWORD": PASSWORD}, "docker-compose.scale.yml")
    backfill = yaml.safe_load(done.stdout)["services"]["backfill"]
    assert backfill["environment"]["NIGHTCAST_DASK_ADDRESS"] == "tcp://dask-scheduler:8786"
    assert backfill["environment"]["NIGHTCAST_DATABASE_PASSWORD"] == PASSWORD


def test_the_report_service_writes_into_a_folder_of_the_host(compose: dict) -> None:
    report = compose["services"]["report"]
    assert report["entrypoint"] == ["nightcast", "report", "--out", "/report"]
    [volume] = report["volumes"]
    target = volume["target"] if isinstance(volume, dict) else volume.split(":")[1]
    source = volume["source"] if isinstance(volume, dict) else volume.split(":")[0]
    assert target == "/report" and Path(source) == ROOT / "report"
    assert report["environment"]["NIGHTCAST_DATABASE_PASSWORD"] == PASSWORD
