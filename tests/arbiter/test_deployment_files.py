"""docker-compose.yml, platform/ and .env.example agree with each other and with the code.

There is no Docker engine in CI, so nothing here builds or starts a container. Instead each
file is read and checked against what it points at: the variables the settings read, the roles
the entrypoint knows, the files the Dockerfile copies. The entrypoint runs for real with stub
``python``/``gunicorn``/``celery`` commands, the web healthcheck runs against Django's test
client, and the image's collectstatic step runs on a copy of exactly the files the image gets.
"""

import ast
import fnmatch
import http.client
import importlib.util
import json
import os
import re
import runpy
import shlex
import shutil
import stat
import subprocess
import sys
import tomllib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from django.test import Client
from gunicorn.config import Config as GunicornConfig
from packaging.specifiers import SpecifierSet

from arbiter.settings.base import ENVIRONMENT_VARIABLES

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "platform" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENTRYPOINT = ROOT / "platform" / "entrypoint.sh"
GUNICORN_CONF = ROOT / "platform" / "gunicorn.conf.py"
APP_ROLE_SCRIPT = ROOT / "platform" / "postgres" / "app-role.sh"
APP_ROLE_SQL = ROOT / "platform" / "postgres" / "app-role.sql"
# The postgres image runs the scripts in this folder once, when it initialises an empty volume.
INITDB_DIR = "/docker-entrypoint-initdb.d"

SERVICES = ("db", "redis", "web", "worker", "beat")
APP_SERVICES = ("web", "worker", "beat")
# Read by gunicorn or by Django's bootstrap, not by the settings module.
NON_SETTINGS_VARIABLES = {"DJANGO_SETTINGS_MODULE", "WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS"}
# Read by platform/entrypoint.sh alone: the owner's URL, for `manage.py migrate` and nothing
# else, so the settings (and whatever runs with them) never hold it.
ENTRYPOINT_VARIABLES = {"MIGRATION_DATABASE_URL"}
# Settings whose base.py default is only right for a laptop: production must be given them.
REQUIRED_IN_PRODUCTION = {
    "SECRET_KEY",
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "ALLOWED_HOSTS",
    "ARTIFACT_ROOT",
    "EMAIL_URL",
}
# ${VAR}, ${VAR:-default}, ${VAR:?message} and $VAR, but not the $$ escape.
INTERPOLATION = re.compile(r"(?<!\$)\$(?:\{([A-Za-z_][A-Za-z0-9_]*)|([A-Za-z_][A-Za-z0-9_]*))")
# postgres://user:password@host:port/name, the password possibly a compose interpolation.
POSTGRES_URL = re.compile(r"postgres://([^:@/]+):(.+)@([^:@/]+):(\d+)/([^/?]+)")


# --- readers --------------------------------------------------------------------------------


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


def _service(name: str) -> dict[str, Any]:
    return _compose()["services"][name]


def _environment(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {key: str(value) for key, value in environment.items()}


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for key, value in node.items() for s in _strings(key) + _strings(value)]
    if isinstance(node, list):
        return [s for item in node for s in _strings(item)]
    return []


def _interpolated_variables() -> set[str]:
    return {
        braced or bare
        for text in _strings(_compose())
        for braced, bare in INTERPOLATION.findall(text)
    }


def _compose_default(value: str) -> str:
    """The value compose gives ``${VAR:-default}`` when VAR is unset or empty."""
    match = re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*:-([^}]*)\}", value)
    assert match, f"{value!r} is not of the form ${{VAR:-default}}"
    return match.group(1)


def _env_example_variables() -> set[str]:
    return {
        match.group(1)
        for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
        if (match := re.match(r"([A-Za-z_][A-Za-z0-9_]*)=", line))
    }


def _volume_mounts(service: dict[str, Any]) -> dict[str, str]:
    """target -> source for the service's volumes (short and long syntax)."""
    mounts = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume.get("source", ""), volume["target"]
        mounts[target] = source
    return mounts


def _postgres_url(url: str) -> dict[str, str]:
    match = POSTGRES_URL.fullmatch(url)
    assert match, f"{url!r} is not postgres://user:password@host:port/name"
    return dict(zip(("user", "password", "host", "port", "name"), match.groups(), strict=True))


def _interpolated(text: str) -> set[str]:
    return {braced or bare for braced, bare in INTERPOLATION.findall(text)}


def _bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """target -> the repository file a ./relative source names (read-only ones only)."""
    mounts = {}
    for volume in service.get("volumes", []):
        assert isinstance(volume, str), "short syntax keeps the mounts checkable"
        source, target, *options = volume.split(":")
        if source.startswith("./"):
            assert options == ["ro"], f"{source} is mounted writable"
            mounts[target] = (COMPOSE_FILE.parent / source).resolve()
    return mounts


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction; continuation lines joined, comments dropped."""
    instructions = []
    current = ""
    for raw_line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        keyword, _, arguments = (current + line).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        current = ""
    assert not current, "the Dockerfile ends inside a continued line"
    return instructions


def _dockerfile_values(keyword: str) -> list[str]:
    return [arguments for kw, arguments in _dockerfile_instructions() if kw == keyword]


def _without_flags(arguments: str) -> str:
    tokens = arguments.split(" ")
    while tokens and tokens[0].startswith("--"):
        tokens.pop(0)
    return " ".join(tokens).strip()


def _dockerfile_copies() -> list[tuple[list[str], str]]:
    copies = []
    for arguments in _dockerfile_values("COPY"):
        rest = _without_flags(arguments)
        parts = json.loads(rest) if rest.startswith("[") else shlex.split(rest)
        *sources, destination = parts
        copies.append(([source.rstrip("/").removeprefix("./") for source in sources], destination))
    return copies


def _dockerfile_env() -> dict[str, str]:
    env = {}
    for arguments in _dockerfile_values("ENV") + _dockerfile_values("ARG"):
        tokens = shlex.split(arguments)
        if "=" not in tokens[0]:  # legacy "ENV KEY value" form
            env[tokens[0]] = " ".join(tokens[1:])
            continue
        for token in tokens:
            key, _, value = token.partition("=")
            env[key] = value
    return env


def _workdir() -> str:
    workdirs = _dockerfile_values("WORKDIR")
    assert len(workdirs) == 1, "one WORKDIR keeps relative paths unambiguous"
    return workdirs[0]


def _exec_form(keyword: str) -> list[str]:
    values = _dockerfile_values(keyword)
    assert len(values) == 1, f"exactly one {keyword}"
    assert values[0].startswith("["), f"{keyword} must use the exec (JSON) form"
    return json.loads(values[0])


def _entrypoint_roles() -> set[str]:
    """The patterns of the entrypoint's case statement (``*`` excluded)."""
    script = ENTRYPOINT.read_text(encoding="utf-8")
    body = re.search(r"^\s*case\s.*?\bin\s*$(.*?)^\s*esac\b", script, re.S | re.M)
    assert body, "platform/entrypoint.sh has no case statement"
    roles = set()
    for pattern in re.findall(r"^[ \t]*([^\s()#;][^()\n]*?)\)[ \t]*$", body.group(1), re.M):
        roles.update(part.strip().strip("\"'") for part in pattern.split("|"))
    return roles - {"*"}


def _dockerignore_patterns() -> list[str]:
    return [
        line.strip().rstrip("/")
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.strip().startswith(("#", "!"))
    ]


def _ignored(path: str, patterns: list[str]) -> bool:
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(
        fnmatch.fnmatch(prefix, pattern)
        or (pattern.startswith("**/") and fnmatch.fnmatch(prefix, pattern[3:]))
        for prefix in prefixes
        for pattern in patterns
    )


def _top_level_packages() -> set[str]:
    return {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}


def _gunicorn_settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, Any]:
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    namespace = runpy.run_path(str(GUNICORN_CONF))
    return {
        name: value
        for name, value in namespace.items()
        if not name.startswith("_") and name.islower() and not isinstance(value, type(os))
    }


# --- docker-compose.yml ---------------------------------------------------------------------


def test_compose_defines_every_service() -> None:
    assert set(SERVICES) <= set(_compose()["services"])


def test_app_services_share_one_image_and_the_shared_environment() -> None:
    compose = _compose()
    shared_env = {key: str(value) for key, value in compose["x-arbiter-env"].items()}
    web = _service("web")
    assert web["build"] == {"context": ".", "dockerfile": "platform/Dockerfile"}
    for name in APP_SERVICES:
        service = _service(name)
        assert service["build"] == web["build"], name
        assert service.get("image") == web.get("image"), name
        environment = _environment(service)
        assert {key: environment.get(key) for key in shared_env} == shared_env, name


def test_every_service_has_a_healthcheck() -> None:
    for name in SERVICES:
        healthcheck = _service(name).get("healthcheck") or {}
        assert healthcheck.get("test"), f"{name} has no healthcheck"
        assert not healthcheck.get("disable"), name
        assert healthcheck["test"][0] in ("CMD", "CMD-SHELL"), name


def test_app_services_start_after_db_and_redis_are_healthy() -> None:
    for name in APP_SERVICES:
        depends_on = _service(name)["depends_on"]
        for dependency in ("db", "redis"):
            assert depends_on[dependency]["condition"] == "service_healthy", (name, dependency)


def test_app_environment_holds_only_variables_the_code_reads() -> None:
    known = set(ENVIRONMENT_VARIABLES) | NON_SETTINGS_VARIABLES | ENTRYPOINT_VARIABLES
    for name in APP_SERVICES:
        unknown = set(_environment(_service(name))) - known
        assert not unknown, f"{name}: nothing reads {sorted(unknown)}"
    script = ENTRYPOINT.read_text(encoding="utf-8")
    for variable in ENTRYPOINT_VARIABLES:
        assert variable not in ENVIRONMENT_VARIABLES, f"{variable}: the settings must not read it"
        assert re.search(rf"\$\{{?{variable}\b", script), f"the entrypoint does not read {variable}"


def test_variables_without_a_production_default_are_set() -> None:
    assert set(ENVIRONMENT_VARIABLES) >= REQUIRED_IN_PRODUCTION
    for name in APP_SERVICES:
        environment = _environment(_service(name))
        missing = {key for key in REQUIRED_IN_PRODUCTION if not environment.get(key)}
        assert not missing, f"{name} lacks {sorted(missing)}"


def test_secrets_have_no_default() -> None:
    environment = _compose()["x-arbiter-env"]
    assert re.fullmatch(r"\$\{SECRET_KEY:\?[^}]+\}", environment["SECRET_KEY"])
    # Each password: where the db service sets it and where a URL uses it.
    for password in ("POSTGRES_PASSWORD", "POSTGRES_APP_PASSWORD"):
        uses = [text for text in _strings(_compose()) if password in _interpolated(text)]
        assert len(uses) >= 2, password
        for text in uses:
            assert "${" + password + ":?" in text, text


def test_settings_module_exists() -> None:
    modules = {_environment(_service(name))["DJANGO_SETTINGS_MODULE"] for name in APP_SERVICES}
    modules.add(_dockerfile_env()["DJANGO_SETTINGS_MODULE"])
    assert modules == {"arbiter.settings.production"}
    assert importlib.util.find_spec("arbiter.settings.production") is not None


def test_artifact_root_is_a_named_volume_on_every_app_service() -> None:
    compose = _compose()
    artifact_root = compose["x-arbiter-env"]["ARTIFACT_ROOT"]
    for name in APP_SERVICES:
        mounts = _volume_mounts(_service(name))
        assert artifact_root in mounts, f"{name} does not mount {artifact_root}"
        assert mounts[artifact_root] in compose["volumes"], "a named volume, not a host path"
    # The worker must see the very files web stored.
    assert len({_volume_mounts(_service(n))[artifact_root] for n in APP_SERVICES}) == 1


def test_app_volume_targets_exist_in_the_image() -> None:
    # A new named volume copies the image's directory, owner included; a target missing from
    # the image would be root-owned and unwritable for the application user.
    dockerfile = DOCKERFILE.read_text(encoding="utf-8")
    for name in APP_SERVICES:
        for target in _volume_mounts(_service(name)):
            assert target in dockerfile, f"{name}: {target} is not created by the Dockerfile"


def test_compose_roles_are_handled_by_the_entrypoint() -> None:
    roles = _entrypoint_roles()
    assert {"web", "worker", "beat"} <= roles
    for name in APP_SERVICES:
        command = _service(name)["command"]
        role = command[0] if isinstance(command, list) else command.split()[0]
        assert role == name
        assert role in roles
    assert _exec_form("CMD")[0] in roles


def test_env_example_lists_exactly_the_variables_compose_interpolates() -> None:
    interpolated = _interpolated_variables()
    assert {"SECRET_KEY", "POSTGRES_PASSWORD"} <= interpolated
    listed = _env_example_variables()
    assert not interpolated - listed, f"missing from .env.example: {interpolated - listed}"
    assert not listed - interpolated, f"unused by docker-compose.yml: {listed - interpolated}"


def test_web_healthcheck_passes_against_production_redirect_settings(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    web = _service("web")
    test = web["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    script = test[3]
    production = ast.parse((ROOT / "arbiter/settings/production.py").read_text(encoding="utf-8"))
    proxy_header = next(
        ast.literal_eval(node.value)
        for node in production.body
        if isinstance(node, ast.Assign)
        and any(getattr(target, "id", None) == "SECURE_PROXY_SSL_HEADER" for target in node.targets)
    )
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = proxy_header
    client = Client()

    class DjangoConnection:
        """http.client.HTTPConnection that answers through Django instead of a socket."""

        def __init__(self, host: str, port: int, timeout: float | None = None) -> None:
            assert (host, port) == ("127.0.0.1", 8000)

        def request(self, method: str, url: str, headers: dict[str, str]) -> None:
            extra = {
                "HTTP_" + key.upper().replace("-", "_"): value for key, value in headers.items()
            }
            self.response = client.generic(method, url, **extra)

        def getresponse(self) -> SimpleNamespace:
            return SimpleNamespace(status=self.response.status_code)

    monkeypatch.setattr(http.client, "HTTPConnection", DjangoConnection)
    compose_default = _compose_default(_environment(web)["ALLOWED_HOSTS"])
    for allowed_hosts in (compose_default, "arbiter.bank.example,localhost", ".bank.example"):
        settings.ALLOWED_HOSTS = allowed_hosts.split(",")
        monkeypatch.setenv("ALLOWED_HOSTS", allowed_hosts)
        with pytest.raises(SystemExit) as exit_info:
            exec(script, {})  # noqa: S102 - the healthcheck's own code, from our compose file
        assert exit_info.value.code in (0, None), (allowed_hosts, exit_info.value.code)

    # The redirect the header avoids is really on: without it the check could not pass.
    settings.ALLOWED_HOSTS = ["localhost"]
    assert client.get("/accounts/login/", HTTP_HOST="localhost").status_code == 301


# --- the database roles (platform/postgres/, docs/operations.md "The database role") --------


def test_app_containers_connect_as_the_role_the_db_service_creates() -> None:
    db = _environment(_service("db"))
    app = _postgres_url(_compose()["x-arbiter-env"]["DATABASE_URL"])
    owner = _postgres_url(_environment(_service("web"))["MIGRATION_DATABASE_URL"])
    assert app["user"] == db["ARBITER_APP_ROLE"]
    assert owner["user"] == db["POSTGRES_USER"]
    assert app["user"] != owner["user"], "the application must not connect as the owner"
    assert _interpolated(app["password"]) == _interpolated(db["ARBITER_APP_PASSWORD"])
    assert _interpolated(owner["password"]) == _interpolated(db["POSTGRES_PASSWORD"])
    assert _interpolated(app["password"]) != _interpolated(owner["password"])
    for url in (app, owner):
        assert (url["host"], url["name"]) == ("db", db["POSTGRES_DB"])


def test_only_the_web_role_gets_the_owners_credentials() -> None:
    assert "MIGRATION_DATABASE_URL" not in _compose()["x-arbiter-env"]
    for name in APP_SERVICES:
        environment = _environment(_service(name))
        owner_uses = {
            key for key, value in environment.items() if "POSTGRES_PASSWORD" in _interpolated(value)
        }
        assert owner_uses == ({"MIGRATION_DATABASE_URL"} if name == "web" else set()), name


def test_the_db_service_creates_the_app_role_when_it_initialises_a_volume() -> None:
    db = _service("db")
    mounts = _bind_mounts(db)
    initdb = {target: source for target, source in mounts.items() if target.startswith(INITDB_DIR)}
    assert initdb == {f"{INITDB_DIR}/app-role.sh": APP_ROLE_SCRIPT.resolve()}
    # The script applies the SQL from where compose mounts it, outside the folder whose
    # *.sql files the image would run without the script's variables.
    (sql_path,) = re.findall(r"--file\s+(\S+)", APP_ROLE_SCRIPT.read_text(encoding="utf-8"))
    assert mounts.get(sql_path) == APP_ROLE_SQL.resolve()
    assert not sql_path.startswith(INITDB_DIR)
    # Every variable the script reads is in the db service's environment.
    script_reads = set(re.findall(r"\$\{?([A-Z_][A-Z0-9_]*)", APP_ROLE_SCRIPT.read_text()))
    assert script_reads and script_reads <= set(_environment(db))


def test_the_app_role_script_is_executable_posix_sh() -> None:
    # Executable, the image runs it; otherwise it would source it into its own bash.
    assert APP_ROLE_SCRIPT.stat().st_mode & stat.S_IXUSR
    assert APP_ROLE_SCRIPT.read_text(encoding="utf-8").startswith("#!/bin/sh\n")
    result = subprocess.run(
        ["sh", "-n", str(APP_ROLE_SCRIPT)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def _run_app_role_script(tmp_path: Path, **env: str) -> tuple[int, list[str]]:
    """Runs app-role.sh with psql replaced by a stub that logs its arguments, one a line."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "psql").write_text(
        '#!/bin/sh\nfor arg in "$@"; do printf \'%s\\n\' "$arg"; done > "$STUB_LOG"\n',
        encoding="utf-8",
    )
    (bin_dir / "psql").chmod(0o755)
    log = tmp_path / "psql-args"
    result = subprocess.run(
        [str(APP_ROLE_SCRIPT)],
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", "STUB_LOG": str(log), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result.returncode, log.read_text().splitlines() if log.exists() else []


def test_the_app_role_script_hands_the_role_and_password_to_the_sql(tmp_path: Path) -> None:
    db = _environment(_service("db"))
    password = "Pass word with 'quotes' and $dollars"  # passed as one argument, as written
    returncode, args = _run_app_role_script(
        tmp_path,
        POSTGRES_USER=db["POSTGRES_USER"],
        POSTGRES_DB=db["POSTGRES_DB"],
        ARBITER_APP_ROLE=db["ARBITER_APP_ROLE"],
        ARBITER_APP_PASSWORD=password,
    )
    assert returncode == 0
    assert args[args.index("--username") + 1] == db["POSTGRES_USER"]
    assert args[args.index("--dbname") + 1] == db["POSTGRES_DB"]
    given = dict(args[i + 1].split("=", 1) for i, arg in enumerate(args) if arg == "--set")
    assert given == {"app_role": db["ARBITER_APP_ROLE"], "app_password": password}
    # The variables the SQL insists on are exactly those.
    required = set(re.findall(r"^\\if :\{\?(\w+)\}\n\\else\nDO ", APP_ROLE_SQL.read_text(), re.M))
    assert required == set(given)


def test_the_app_role_script_stops_without_its_password(tmp_path: Path) -> None:
    returncode, args = _run_app_role_script(
        tmp_path, POSTGRES_USER="arbiter", POSTGRES_DB="arbiter", ARBITER_APP_ROLE="arbiter_app"
    )
    assert returncode != 0
    assert args == []


# --- platform/gunicorn.conf.py --------------------------------------------------------------


def test_entrypoint_starts_gunicorn_with_an_existing_config_that_binds() -> None:
    match = re.search(r"\bgunicorn\s+-c\s+(\S+)\s+(\S+)", ENTRYPOINT.read_text(encoding="utf-8"))
    assert match
    config_path, app = match.groups()
    assert (ROOT / config_path).resolve() == GUNICORN_CONF.resolve()
    assert runpy.run_path(str(GUNICORN_CONF))["bind"] == "0.0.0.0:8000"
    module, _, attribute = app.partition(":")
    assert (module, attribute) == ("arbiter.wsgi", "application")
    assert importlib.util.find_spec(module) is not None


def test_gunicorn_config_names_are_settings_gunicorn_accepts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # gunicorn silently ignores a misspelt name; cfg.set also runs each setting's validator.
    config = GunicornConfig()
    for name, value in _gunicorn_settings(monkeypatch).items():
        assert name in config.settings, f"{name} is not a gunicorn setting"
        config.set(name, value)
    assert config.forwarded_allow_ips == ["*"]


@pytest.mark.parametrize(
    ("web_concurrency", "expected"),
    [(None, "auto"), ("0", "auto"), ("3", 3), ("12", 12)],
)
def test_gunicorn_workers_follow_web_concurrency(
    monkeypatch: pytest.MonkeyPatch, web_concurrency: str | None, expected: int | str
) -> None:
    env = {} if web_concurrency is None else {"WEB_CONCURRENCY": web_concurrency}
    workers = _gunicorn_settings(monkeypatch, **env)["workers"]
    if expected == "auto":
        assert workers == min(2 * len(os.sched_getaffinity(0)) + 1, 8)
    else:
        assert workers == expected


def test_compose_default_web_concurrency_means_automatic(monkeypatch: pytest.MonkeyPatch) -> None:
    default = _compose_default(_environment(_service("web"))["WEB_CONCURRENCY"])
    int(default)  # gunicorn int()s WEB_CONCURRENCY on import: an empty default would crash it
    workers = _gunicorn_settings(monkeypatch, WEB_CONCURRENCY=default)["workers"]
    assert 1 <= workers <= 8


# --- platform/Dockerfile and .dockerignore --------------------------------------------------


def test_dockerfile_base_image_matches_the_supported_python() -> None:
    (base,) = _dockerfile_values("FROM")
    match = re.fullmatch(r"python:(\d+\.\d+)-slim", base)
    assert match, base
    requires_python = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))[
        "project"
    ]["requires-python"]
    assert f"{match.group(1)}.0" in SpecifierSet(requires_python)


def test_dockerfile_copy_sources_exist_and_are_not_dockerignored() -> None:
    patterns = _dockerignore_patterns()
    for sources, _ in _dockerfile_copies():
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
            assert not _ignored(source, patterns), f"COPY {source}: excluded by .dockerignore"


def test_dockerfile_copies_every_top_level_package() -> None:
    copied = {source for sources, _ in _dockerfile_copies() for source in sources}
    needed = _top_level_packages() | {"manage.py", "templates", "platform", "pyproject.toml"}
    assert not needed - copied, f"not copied into the image: {sorted(needed - copied)}"


def test_dockerfile_entrypoint_is_the_script_in_exec_form() -> None:
    # Exec form: the script, then gunicorn or celery through its exec, is PID 1 and gets SIGTERM.
    (entrypoint,) = _exec_form("ENTRYPOINT")
    workdir = _workdir()
    relative = entrypoint.removeprefix(workdir.rstrip("/") + "/")
    assert relative == "platform/entrypoint.sh"
    copied = {
        destination.rstrip("/")
        for sources, destination in _dockerfile_copies()
        if "platform" in sources
    }
    assert copied == {"platform"}


def test_dockerfile_runs_as_a_non_root_user_and_bakes_in_no_secret() -> None:
    instructions = [keyword for keyword, _ in _dockerfile_instructions()]
    users = _dockerfile_values("USER")
    assert users and users[-1] not in ("root", "0")
    assert instructions.index("USER") < instructions.index("ENTRYPOINT")
    env = _dockerfile_env()
    assert "SECRET_KEY" not in env
    assert env["PYTHONPATH"] == _workdir()
    collectstatic = [run for run in _dockerfile_values("RUN") if "collectstatic" in run]
    assert len(collectstatic) == 1
    assert re.match(r'SECRET_KEY="[^"]{50,}"\s+python manage\.py collectstatic', collectstatic[0])
    assert "8000" in _dockerfile_values("EXPOSE")


def test_dockerignore_keeps_local_state_and_secrets_out() -> None:
    patterns = _dockerignore_patterns()
    for path in (
        ".env",
        ".git",
        ".venv",
        "var",
        "arbiter.sqlite3",
        "arbiter.sqlite3-wal",  # the demo's write-ahead log beside it
        "arbiter.sqlite3-shm",
        "governance/__pycache__",
        "test-output",
        ".hypothesis",
        ".pytest_cache",
        ".ruff_cache",
    ):
        assert _ignored(path, patterns), f"{path} would be sent to the docker build"


def test_image_files_are_enough_for_the_collectstatic_step(tmp_path: Path) -> None:
    """Runs the Dockerfile's collectstatic line on a copy of exactly the files the image gets."""
    workdir = _workdir()
    app = tmp_path / "app"
    for sources, destination in _dockerfile_copies():
        for source in sources:
            src = ROOT / source
            if not src.exists():  # reported by test_dockerfile_copy_sources_exist...
                continue
            target = app / destination.removeprefix(workdir).lstrip("/")
            if src.is_dir():
                ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
                shutil.copytree(src, target, ignore=ignore, dirs_exist_ok=True)
            else:
                if destination.endswith("/"):
                    target = target / src.name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, target)
    image_env = {key: value.replace(workdir, str(app)) for key, value in _dockerfile_env().items()}
    (run,) = [run for run in _dockerfile_values("RUN") if "collectstatic" in run]
    result = subprocess.run(
        ["sh", "-c", run],
        cwd=app,
        env={
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "HOME": str(tmp_path),
            "LANG": "C.UTF-8",
            **image_env,
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # STATIC_ROOT sits under BASE_DIR: finding it here proves the copy, not the repo, ran.
    assert (app / "staticfiles" / "admin").is_dir()


# --- platform/entrypoint.sh -----------------------------------------------------------------


def test_entrypoint_is_executable_posix_sh() -> None:
    assert ENTRYPOINT.stat().st_mode & stat.S_IXUSR
    assert ENTRYPOINT.read_text(encoding="utf-8").startswith("#!/bin/sh\n")
    result = subprocess.run(
        ["sh", "-n", str(ENTRYPOINT)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


# Each stub also notes which database URLs it was started with.
STUB_PYTHON = """#!/bin/sh
echo "python $* [cwd=$(pwd)]" >> "$STUB_LOG"
echo "python $2: ${DATABASE_URL-unset} ${MIGRATION_DATABASE_URL-unset}" >> "$STUB_ENV_LOG"
if [ "$1" = manage.py ] && [ "$2" = check ]; then
    calls=$(cat "$STUB_STATE" 2>/dev/null || echo 0)
    calls=$((calls + 1))
    echo "$calls" > "$STUB_STATE"
    if [ "$calls" -le "$DB_DOWN_FOR" ]; then
        echo "OperationalError: connection to server at db failed" >&2
        exit 1
    fi
fi
"""
STUB_LOGGING = """#!/bin/sh
echo "{name} $* [cwd=$(pwd)]" >> "$STUB_LOG"
echo "{name}: ${{DATABASE_URL-unset}} ${{MIGRATION_DATABASE_URL-unset}}" >> "$STUB_ENV_LOG"
"""


def _run_entrypoint(
    tmp_path: Path, *args: str, db_down_for: int = 0, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Runs the entrypoint with python, gunicorn, celery and sleep replaced by loggers."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stubs = {"python": STUB_PYTHON}
    stubs |= {name: STUB_LOGGING.format(name=name) for name in ("gunicorn", "celery", "sleep")}
    for name, body in stubs.items():
        (bin_dir / name).write_text(body, encoding="utf-8")
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "calls.log"
    result = subprocess.run(
        [str(ENTRYPOINT), *args],
        cwd=tmp_path,
        env={
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "STUB_LOG": str(log),
            "STUB_STATE": str(tmp_path / "check-calls"),
            "STUB_ENV_LOG": str(tmp_path / "env.log"),
            "DB_DOWN_FOR": str(db_down_for),
            **(env or {}),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    calls = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    return result, calls


CHECK = f"python manage.py check --database default [cwd={ROOT}]"
SLEEP = f"sleep 2 [cwd={ROOT}]"


def test_web_waits_for_the_database_migrates_then_serves(tmp_path: Path) -> None:
    result, calls = _run_entrypoint(tmp_path, "web", db_down_for=2)
    assert result.returncode == 0, result.stderr
    assert calls == [
        CHECK,
        SLEEP,
        CHECK,
        SLEEP,
        CHECK,
        f"python manage.py migrate --noinput [cwd={ROOT}]",
        f"gunicorn -c platform/gunicorn.conf.py arbiter.wsgi:application [cwd={ROOT}]",
    ]
    assert "waiting for the database (try 1 of" in result.stderr


APP_URL = "postgres://arbiter_app:app-secret@db:5432/arbiter"
OWNER_URL = "postgres://arbiter:owner-secret@db:5432/arbiter"


def test_web_migrates_as_the_owner_and_serves_as_the_app_role(tmp_path: Path) -> None:
    result, _ = _run_entrypoint(
        tmp_path, "web", env={"DATABASE_URL": APP_URL, "MIGRATION_DATABASE_URL": OWNER_URL}
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "env.log").read_text().splitlines() == [
        f"python check: {APP_URL} {OWNER_URL}",
        f"python migrate: {OWNER_URL} {OWNER_URL}",
        f"gunicorn: {APP_URL} unset",  # the server never holds the owner's credentials
    ]


def test_web_without_a_migration_url_migrates_with_database_url(tmp_path: Path) -> None:
    result, _ = _run_entrypoint(tmp_path, "web", env={"DATABASE_URL": APP_URL})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "env.log").read_text().splitlines() == [
        f"python check: {APP_URL} unset",
        f"python migrate: {APP_URL} unset",
        f"gunicorn: {APP_URL} unset",
    ]


def test_no_command_means_web(tmp_path: Path) -> None:
    _, calls = _run_entrypoint(tmp_path)
    assert calls[-1].startswith("gunicorn -c platform/gunicorn.conf.py ")


@pytest.mark.parametrize(
    ("role", "command"),
    [
        ("worker", "celery -A arbiter worker -Q celery,arbiter-chunks --loglevel=INFO"),
        (
            "beat",
            "celery -A arbiter beat --loglevel=INFO "
            "--schedule=/var/lib/arbiter/beat/celerybeat-schedule",
        ),
    ],
)
def test_celery_roles_wait_for_the_database_then_start(
    tmp_path: Path, role: str, command: str
) -> None:
    result, calls = _run_entrypoint(tmp_path, role)
    assert result.returncode == 0, result.stderr
    assert calls == [CHECK, f"{command} [cwd={ROOT}]"]


def test_other_commands_run_as_given_without_waiting(tmp_path: Path) -> None:
    result, calls = _run_entrypoint(
        tmp_path, "python", "manage.py", "createsuperuser", "--noinput", db_down_for=99
    )
    assert result.returncode == 0, result.stderr
    assert calls == [f"python manage.py createsuperuser --noinput [cwd={ROOT}]"]


def test_gives_up_with_the_last_error_when_the_database_never_comes(tmp_path: Path) -> None:
    result, calls = _run_entrypoint(tmp_path, "web", db_down_for=10_000)
    assert result.returncode != 0
    checks = calls.count(CHECK)
    assert 2 <= checks <= 100, "a bounded number of tries"
    assert not [call for call in calls if "migrate" in call or call.startswith("gunicorn")]
    assert "connection to server at db failed" in result.stderr
    assert f"still fails after {checks} tries" in result.stderr


def test_workers_take_the_chunk_queue_of_distributed_runs(settings: Any) -> None:
    script = ENTRYPOINT.read_text(encoding="utf-8")
    commands = dict(
        re.findall(
            r"^\s*([\w-]+)\)\s*\n(?:\s*#.*\n|\s*wait_for_database\n)*\s*exec (.*)$", script, re.M
        )
    )
    queue = settings.OPTIMISATION_CHUNK_QUEUE
    # The compose worker takes runs (the default queue) and chunks; a chunk worker only chunks.
    assert f"-Q celery,{queue}" in commands["worker"]
    assert f"-Q {queue}" in commands["chunk-worker"]
    assert "wait_for_database" not in script.split("chunk-worker)")[1].split(";;")[0]


@pytest.mark.django_db
def test_a_warmed_gunicorn_worker_freezes_what_it_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    import gc
    import logging

    post_worker_init = runpy.run_path(str(GUNICORN_CONF))["post_worker_init"]
    worker = type("Worker", (), {"log": logging.getLogger("gunicorn-test")})()
    gc.unfreeze()
    try:
        post_worker_init(worker)
        # The garbage collector no longer walks what the worker loaded at start-up, so no
        # request pays for a full collection over it.
        assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()


def test_a_worker_serving_an_app_without_django_does_not_warm_the_runtime(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """benchmarks/decision_latency.py serves benchmarks/trivial_wsgi.py with this config;
    importing the decision runtime there would log a traceback per worker."""
    import gc
    import logging

    from django.apps import apps

    warmed = []
    monkeypatch.setattr("decisions.runtime.warm_up", lambda: warmed.append(True))
    monkeypatch.setattr(apps, "ready", False)
    post_worker_init = runpy.run_path(str(GUNICORN_CONF))["post_worker_init"]
    worker = type("Worker", (), {"log": logging.getLogger("gunicorn-test")})()
    try:
        with caplog.at_level(logging.ERROR):
            post_worker_init(worker)
    finally:
        gc.unfreeze()
    assert warmed == [] and caplog.text == ""


def test_the_readme_documents_every_variable_the_settings_read() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", readme, flags=re.MULTILINE))
    missing = set(ENVIRONMENT_VARIABLES) - rows
    assert not missing, f"README.md's settings table lacks {sorted(missing)}"
