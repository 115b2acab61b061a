"""Apache Superset for this lakehouse: its settings, metadata, admin, the dashboards' import, the server.

Everything lives under the state directory: ``<home>/superset`` (``superset_config.py``, the
SQLite metadata, the rendered import), ``<home>/logs/superset.log``, ``<home>/run/superset.pid``.
The secrets are generated once into ``<home>/secrets`` (owner-only): ``superset.secret_key``
(Superset's SECRET_KEY, which also encrypts what its metadata keeps) and
``superset.admin.password``. The settings file holds no secret: it reads them from there at
start, and the Thrift password (when ``thrift.auth`` is on) from ``LAKEHOUSE_THRIFT_PASSWORD``
or its secrets file through ``SQLALCHEMY_CUSTOM_PASSWORD_STORE``, so Superset never stores it.

``up`` = install (once) -> settings -> metadata upgrade, roles and admin (one Python process in
Superset's virtualenv) -> import ``dashboards/`` (database, datasets, charts, dashboards, each
overwritten) -> gunicorn on ``dashboard.host:dashboard.port`` -> wait for ``/health``. ``serve``
does the same and then becomes gunicorn in the foreground (the image's ``dashboard`` role).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn
from urllib.parse import quote

from lakehouse import processes
from lakehouse.config import PROJECT_ROOT, THRIFT_PASSWORD_ENV, Config, generated_secret, thrift_password_file
from lakehouse.dashboards import bundle, install
from lakehouse.dashboards.install import DashboardError
from lakehouse.services.process import (
    ServiceStatus,
    answers_http,
    check_port_free,
    read_pid,
    server_status,
    start_service,
    stop_service,
)

NAME = "superset"
SECRET_KEY_FILE = "superset.secret_key"
ADMIN_PASSWORD_FILE = "superset.admin.password"
SETUP_TIMEOUT_SECONDS = 900
HEALTH_PATH = "/health"
# The database the dashboards' datasets use (its name in Superset; gold is the default schema).
DATABASE_SCHEMA = "gold"

SETTINGS_TEMPLATE = '''\
"""Superset's settings for the lakehouse at {home}.

Written by `lakehouse dashboard up` from conf/lakehouse.yaml (edits are overwritten). No secret
is written here: they are read from {secrets} at start.
"""

import os
import sys
from pathlib import Path

from sqlalchemy.dialects import registry

_SECRETS = Path({secrets!r})
SECRET_KEY = (_SECRETS / {secret_key_file!r}).read_text().strip()
SQLALCHEMY_DATABASE_URI = {metadata_uri!r}
SUPERSET_WEBSERVER_PORT = {port}
# The hive+lakehouse:// dialect (PyHive with Spark's table listing) from the project's package.
sys.path.append({project_root!r})
registry.register("hive.lakehouse", "lakehouse.serving.sqlalchemy_dialect", "LakehouseHiveDialect")
{password_store}

def FLASK_APP_MUTATOR(app):
    """Superset's Hive engine spec lists views with its own `SHOW VIEWS` and reads the first
    column of each row: on Spark that is the schema, so the table picker showed `gold` once,
    as a view, instead of the published gold views. The spec asks the dialect instead
    (hive+lakehouse reads Spark's view names)."""
    from superset.db_engine_specs.hive import HiveEngineSpec

    def get_view_names(cls, database, inspector, schema):
        return set(inspector.get_view_names(schema))

    HiveEngineSpec.get_view_names = classmethod(get_view_names)


# Nothing leaves this machine: the page may load images, scripts and data from this server only.
# (The prebuilt frontend renders a telemetry pixel, apachesuperset.gateway.scarf.sh, with no
# setting to turn it off; this policy stops the browser from loading it.)
TALISMAN_ENABLED = True
TALISMAN_CONFIG = {{
    "content_security_policy": {{
        "base-uri": ["'self'"],
        "default-src": ["'self'"],
        "img-src": ["'self'", "blob:", "data:"],
        "worker-src": ["'self'", "blob:"],
        "connect-src": ["'self'"],
        "object-src": "'none'",
        "style-src": ["'self'", "'unsafe-inline'"],
        "font-src": ["'self'"],
        "script-src": ["'self'", "'strict-dynamic'"],
    }},
    "content_security_policy_nonce_in": ["script-src"],
    "force_https": False,
    "session_cookie_secure": False,
}}
THEME_FONT_URL_ALLOWED_DOMAINS = []
MAPBOX_API_KEY = ""
RATELIMIT_STORAGE_URI = "memory://"
PREVENT_UNSAFE_DB_CONNECTIONS = True
# A dashboard's query waits at most as long as the Thrift server lets a BI query run.
SUPERSET_WEBSERVER_TIMEOUT = {webserver_timeout}
SQLLAB_TIMEOUT = {webserver_timeout}
'''

PASSWORD_STORE = """
# The Thrift server requires a password: Superset asks this function for it on every
# connection and never stores it.
def _thrift_password(url):
    return os.environ.get({env!r}) or Path({path!r}).read_text().strip()


SQLALCHEMY_CUSTOM_PASSWORD_STORE = _thrift_password
"""

# Run in Superset's virtualenv with one app start: metadata upgrade, roles, admin, import.
SETUP_SCRIPT = """
import json, os, sys
from pathlib import Path

from superset.app import create_app

app = create_app()
with app.app_context():
    from flask import g
    from flask_migrate import upgrade
    from superset import appbuilder, security_manager
    from superset.commands.chart.importers.dispatcher import ImportChartsCommand
    from superset.commands.dashboard.importers.dispatcher import ImportDashboardsCommand
    from superset.commands.database.importers.dispatcher import ImportDatabasesCommand
    from superset.commands.dataset.importers.dispatcher import ImportDatasetsCommand
    from superset.extensions import db

    upgrade()
    appbuilder.add_permissions(update_perms=True)
    security_manager.sync_role_definitions()
    user_name = os.environ["LAKEHOUSE_SUPERSET_ADMIN"]
    password = Path(os.environ["LAKEHOUSE_SUPERSET_ADMIN_PASSWORD_FILE"]).read_text().strip()
    user = security_manager.find_user(username=user_name)
    if user is None:
        role = security_manager.find_role("Admin")
        email = user_name + "@localhost"
        user = security_manager.add_user(user_name, "Lakehouse", "Admin", email, role, password=password)
        if not user:
            sys.exit("could not create the admin user " + user_name)
    else:
        security_manager.reset_password(user.id, password)
    g.user = user
    steps = json.loads(Path(os.environ["LAKEHOUSE_SUPERSET_IMPORT"]).read_text())
    commands = {
        "databases": ImportDatabasesCommand,
        "datasets": ImportDatasetsCommand,
        "charts": ImportChartsCommand,
        "dashboards": ImportDashboardsCommand,
    }
    for step, contents in steps.items():
        commands[step](contents, overwrite=True).run()
        print("imported", step, sum(1 for name in contents if name.startswith(step + "/")), flush=True)
    db.session.commit()
"""


def superset_dir(config: Config) -> Path:
    return config.home / NAME


def pid_file(config: Config) -> Path:
    return config.run_dir / "superset.pid"


def log_file(config: Config) -> Path:
    return config.log_dir / "superset.log"


def admin_password_file(config: Config) -> Path:
    return config.secrets_dir / ADMIN_PASSWORD_FILE


def admin_password(config: Config) -> str:
    return generated_secret(config.secrets_dir, ADMIN_PASSWORD_FILE)


def sqlalchemy_uri(config: Config) -> str:
    """The lakehouse's database for Superset: the Thrift endpoint, with no password in it."""
    thrift = config.thrift
    if thrift.ssl:
        raise DashboardError(
            "dashboard: the Thrift server has TLS on (thrift.ssl), which PyHive's SQLAlchemy dialect cannot "
            "use: point Superset at a server without TLS on a trusted network"
        )
    host = "127.0.0.1" if thrift.host in ("0.0.0.0", "::") else thrift.host
    if thrift.auth_enabled:
        return f"hive+lakehouse://{quote(thrift.user)}@{host}:{thrift.port}/{DATABASE_SCHEMA}?auth=CUSTOM"
    return f"hive+lakehouse://{host}:{thrift.port}/{DATABASE_SCHEMA}"


def settings(config: Config) -> str:
    """The text of superset_config.py for this config."""
    store = ""
    if config.thrift.auth_enabled:
        store = PASSWORD_STORE.format(env=THRIFT_PASSWORD_ENV, path=str(thrift_password_file(config.home)))
    timeout = config.thrift.bi_query_timeout_seconds or 900
    return SETTINGS_TEMPLATE.format(
        home=config.home,
        secrets=str(config.secrets_dir),
        secret_key_file=SECRET_KEY_FILE,
        metadata_uri=f"sqlite:///{superset_dir(config) / 'superset.db'}",
        port=config.dashboard.port,
        project_root=str(PROJECT_ROOT),
        password_store=store,
        webserver_timeout=timeout,
    )


def environment(config: Config) -> dict[str, str]:
    """The environment of every Superset process: its settings file, its home, no analytics."""
    return {
        **os.environ,
        "SUPERSET_CONFIG_PATH": str(settings_file(config)),
        "SUPERSET_HOME": str(superset_dir(config)),
        "FLASK_APP": "superset",
        "SCARF_ANALYTICS": "false",
        "PYTHONUNBUFFERED": "1",
    }


def settings_file(config: Config) -> Path:
    return superset_dir(config) / "superset_config.py"


def write_setup_files(config: Config) -> tuple[Path, int]:
    """What the set-up writes before Superset runs: the secrets (once), the settings file and the
    checked, rendered import of dashboards/; the import file and the number of dashboards in it."""
    home = superset_dir(config)
    home.mkdir(parents=True, exist_ok=True)
    generated_secret(config.secrets_dir, SECRET_KEY_FILE)
    admin_password(config)
    settings_file(config).write_text(settings(config))
    dashboards = bundle.load()
    problems = bundle.check(dashboards)
    if problems:
        raise DashboardError(f"dashboards/: {problems[0]} ({len(problems)} problem(s) in all)")
    import_file = home / "import.json"
    import_file.write_text(json.dumps(bundle.render(dashboards, sqlalchemy_uri(config))))
    return import_file, len(dashboards.dashboards)


def prepare(config: Config, say: Callable[[str], None]) -> Path:
    """Install (once), write the settings, upgrade the metadata, set the admin, import dashboards/."""
    install.ensure_installed(config, say)
    home = superset_dir(config)
    import_file, dashboards = write_setup_files(config)
    say(f"superset: metadata, admin and the import of {dashboards} dashboards...")
    env = {
        **environment(config),
        "LAKEHOUSE_SUPERSET_ADMIN": config.dashboard.admin_user,
        "LAKEHOUSE_SUPERSET_ADMIN_PASSWORD_FILE": str(admin_password_file(config)),
        "LAKEHOUSE_SUPERSET_IMPORT": str(import_file),
    }
    python = str(install.venv_bin(config, "python"))
    result = processes.run(
        [python, "-c", SETUP_SCRIPT],
        timeout=SETUP_TIMEOUT_SECONDS,
        what="Superset's set-up",
        setting="lakehouse.dashboards.superset.SETUP_TIMEOUT_SECONDS",
        env=env,
    )
    setup_log = config.log_dir / "superset-setup.log"
    setup_log.parent.mkdir(parents=True, exist_ok=True)
    setup_log.write_text(result.stdout)
    if result.returncode != 0:
        raise DashboardError(f"Superset's set-up failed (exit {result.returncode}): see {setup_log}")
    return home


def command(config: Config) -> list[str]:
    dashboard = config.dashboard
    return [
        str(install.venv_bin(config, "gunicorn")),
        f"--bind={dashboard.host}:{dashboard.port}",
        "--workers=1",
        "--worker-class=gthread",
        f"--threads={dashboard.threads}",
        f"--timeout={(config.thrift.bi_query_timeout_seconds or 900) + 30}",
        "--access-logfile=-",
        "superset.app:create_app()",
    ]


def healthy(config: Config) -> bool:
    server = config.dashboard
    return answers_http(server.connect_host, server.port, server.url + HEALTH_PATH)


def _ready_to_serve(config: Config, say: Callable[[str], None]) -> tuple[list[str], dict[str, str]]:
    """The port is free, Superset is set up: the server's command line and environment.

    What ``start`` (in the background) and ``serve`` (in the foreground) share."""
    check_port_free(config.dashboard.connect_host, config.dashboard.port, "LAKEHOUSE_DASHBOARD_PORT")
    prepare(config, say)
    say(f"superset: starting on {config.dashboard.url}...")
    return command(config), environment(config)


def start(config: Config, say: Callable[[str], None]) -> bool:
    """Set up and start Superset in the background unless it runs; True when this call started it."""
    if read_pid(pid_file(config)) is not None:
        prepare(config, say)  # the dashboards of this checkout, into the running server
        return False
    line, env = _ready_to_serve(config, say)
    start_service(
        line,
        log_file=log_file(config),
        pid_file=pid_file(config),
        env=env,
        ready=lambda: healthy(config),
        timeout=config.dashboard.startup_timeout_seconds,
        what="superset",
    )
    return True


def serve(config: Config, say: Callable[[str], None]) -> NoReturn:
    """Set up Superset, then become its server in the foreground (a container's main process:
    no pid file, its log on stdout); ``start`` is the same with the server in the background."""
    line, env = _ready_to_serve(config, say)
    os.execve(line[0], line, env)


def stop(config: Config) -> bool:
    return stop_service(pid_file(config))


def status(config: Config) -> ServiceStatus:
    return server_status(NAME, pid_file(config), config.dashboard.url, lambda: healthy(config), log_file(config))


def running_url(config: Config) -> str | None:
    """The dashboards' URL when this state directory's Superset runs (for the pipeline's summary)."""
    return config.dashboard.url if read_pid(pid_file(config)) is not None else None
