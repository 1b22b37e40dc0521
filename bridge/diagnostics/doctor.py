"""`agent-bridge doctor`: is everything the daemon needs in order, and if not, what to do.

Checks, each giving `ok`, `warn` (works, but worth knowing), `error` (broken: the command
exits non-zero) or `skip` (not installed and not asked for):

- the config file (parsed, the default agent exists, the trace file is writable);
- the state dir (exists or can be made, writable, private, the SQLite store passes
  `PRAGMA integrity_check`), and the daily log directory;
- the environment agents get (the login shell's, `bridge.envsetup`), run fresh;
- every known agent: found (and where it looked), executable, its `--version`, its
  handshake through the adapter's `probe()` for ACP agents (`initialize` only: nothing is
  sent to a model), and whether credentials are present for the agents whose login is
  known (an API key in the environment, or the CLI's own credentials file). For `claude` and
  `codex` only the binary, version and credentials are checked: starting them opens a
  session, and nothing here may reach a model.

A built-in agent that is not installed is `skip` unless it is the default agent, named on
the command line (`--agent NAME`, or `doctor NAME...`), or configured in the config file:
then it is an error.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sqlite3
import sys
import tempfile
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import anyio

from bridge import __version__, envsetup
from bridge.config import INSTALL_HINTS, ConfigFile, agent_table
from bridge.core.adapter import AdapterEnv, AgentSpec
from bridge.diagnostics import binaries
from bridge.diagnostics.classify import Evidence, classify, evidence_of, family
from bridge.diagnostics.redact import default as default_redactor
from bridge.errors import AgentError, RpcError
from bridge.store import pg_url

LOW_DISK_BYTES = 200 * 1024 * 1024
STATUS_ORDER = {"skip": 0, "ok": 1, "warn": 2, "error": 3}
# Kinds that mean the program cannot run at all.
BROKEN = frozenset({"node_missing", "broken_install", "not_found", "not_executable"})


@dataclass
class Check:
    name: str
    status: str  # ok | warn | error | skip
    summary: str
    fix: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class AgentReport:
    name: str
    protocol: str
    command: str
    required: bool
    path: str | None = None
    version: str | None = None
    checks: list[Check] = field(default_factory=list)

    @property
    def status(self) -> str:
        return worst(c.status for c in self.checks) if self.checks else "ok"


@dataclass
class Report:
    checks: list[Check]
    agents: list[AgentReport]

    @property
    def ok(self) -> bool:
        return all(c.status != "error" for c in self.checks) and all(a.status != "error" for a in self.agents)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "version": __version__,
            "checks": [asdict(c) for c in self.checks],
            "agents": [
                {
                    "name": a.name,
                    "protocol": a.protocol,
                    "command": a.command,
                    "required": a.required,
                    "status": a.status,
                    "path": a.path,
                    "version": a.version,
                    "checks": [asdict(c) for c in a.checks],
                }
                for a in self.agents
            ],
        }


def worst(statuses: Any) -> str:
    return max(statuses, key=lambda s: STATUS_ORDER[s], default="ok")


@dataclass
class Options:
    state_dir: str
    config: ConfigFile | None  # None: the config file could not be loaded
    config_path: str | None = None
    config_error: str | None = None
    required: Sequence[str] = ()  # agents named with --agent
    handshake_timeout: float | None = None
    only: Sequence[str] = ()  # check just these agents


async def run(opts: Options) -> Report:
    cfg = opts.config or ConfigFile()
    checks: list[Check] = [check_config(opts)]
    environment = envsetup.Environment(
        opts.state_dir, login_shell=cfg.login_shell_env, extra=cfg.env, path_prepend=cfg.path_prepend
    )
    previous = envsetup.current()
    envsetup.install(environment)
    try:
        checks.append(await check_environment(environment))
        checks += check_state_dir(opts.state_dir)
        if cfg.store and pg_url.is_postgres(cfg.store):
            # The sessions are in PostgreSQL: that store is checked, not a file in the state dir.
            checks = [c for c in checks if c.name != "session store"] + [await check_postgres_store(cfg.store)]
        table = agent_table(cfg)
        required = set(opts.required) | set(cfg.agents) | set(opts.only)
        if cfg.default_agent:
            required.add(cfg.default_agent)
        names = [n for n in table if not opts.only or n in opts.only]
        reports = [
            AgentReport(n, table[n].protocol, " ".join([table[n].command, *table[n].args]), n in required)
            for n in names
        ]
        timeout = opts.handshake_timeout or cfg.handshake_timeout
        async with anyio.create_task_group() as tg:
            for report in reports:
                tg.start_soon(check_agent, report, table[report.name], opts.state_dir, timeout)
        checks += await check_mcp_servers(cfg)
    finally:
        envsetup.install(previous)
    return Report(checks, reports)


# -- config -----------------------------------------------------------------------------------
def check_config(opts: Options) -> Check:
    if opts.config is None:
        return Check(
            "config",
            "error",
            opts.config_error or "the config file could not be loaded",
            "fix the file (see the Configuration section of the README), or run without --config",
            {"path": opts.config_path},
        )
    cfg = opts.config
    where = opts.config_path or "no config file (built-in defaults)"
    problems: list[str] = []
    table = agent_table(cfg)
    if cfg.default_agent and cfg.default_agent not in table:
        problems.append(
            f"default_agent {cfg.default_agent!r} is not a known agent ({', '.join(sorted(table))})"
        )
    for name in dict.fromkeys([*opts.required, *opts.only]):
        if name not in table:
            problems.append(f"agent {name!r} is not a known agent ({', '.join(sorted(table))})")
    if cfg.trace:
        parent = os.path.dirname(os.path.abspath(os.path.expanduser(cfg.trace))) or "."
        if not (os.path.isdir(parent) and os.access(parent, os.W_OK)):
            problems.append(f"trace file directory {parent} is not writable")
    details = {"path": opts.config_path, "agentsConfigured": sorted(cfg.agents)}
    if problems:
        return Check("config", "error", f"{where}: " + "; ".join(problems), "correct these entries", details)
    n = len(cfg.agents)
    return Check(
        "config", "ok", f"{where}" + (f" ({n} agent{'s' * (n != 1)} configured)" if n else ""), None, details
    )


# -- environment --------------------------------------------------------------------------------
async def check_mcp_servers(cfg: ConfigFile) -> list[Check]:
    """`agent-bridge mcp check` for each configured MCP server (bridge/mcp/check.py)."""
    from bridge.mcp.check import check, entries

    found = entries(cfg.mcp_servers, {n: a.mcp_servers for n, a in cfg.agents.items()})
    results = [await check(scope, name, entry, os.environ) for scope, name, entry in found]
    return [
        Check(f"mcp server {r.name}", "ok" if r.ok else "error", r.summary, r.fix, {"scope": r.scope, "tools": r.tools})
        for r in results
    ]


async def check_environment(environment: envsetup.Environment) -> Check:
    if not environment.login_shell:
        await environment.resolve()
        return Check(
            "environment",
            "ok",
            "login shell environment off (login_shell_env = false): agents get the daemon's environment",
            details={"path": environment.path().split(os.pathsep)},
        )
    login = await environment.resolve(refresh=True)
    base_path = environment.base.get("PATH", "").split(os.pathsep)
    path = environment.path().split(os.pathsep)
    added = [p for p in path if p not in base_path]
    details: dict[str, Any] = {"shell": login.shell, "path": path, "addedToPath": added}
    if login.error:
        return Check(
            "environment",
            "warn",
            f"could not read the login shell's environment: {login.error}; agents get the daemon's environment",
            "make your shell start quickly without a terminal, or set login_shell_env = false and list "
            "the directories agents need in path_prepend",
            details,
        )
    extra = f", added to PATH: {', '.join(added)}" if added else ", PATH unchanged"
    return Check(
        "environment",
        "ok",
        f"login shell {login.shell} answered in {login.seconds:.2f} s{extra}",
        details=details,
    )


# -- state dir ------------------------------------------------------------------------------------
def check_state_dir(state_dir: str) -> list[Check]:
    checks: list[Check] = []
    details: dict[str, Any] = {"path": state_dir}
    try:
        os.makedirs(state_dir, mode=0o700, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".doctor-", dir=state_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return [
            Check(
                "state dir",
                "error",
                f"{state_dir} is not writable: {exc.strerror or exc}",
                "fix its ownership/permissions, or choose another with --state-dir or AGENT_BRIDGE_STATE_DIR",
                details,
            )
        ]
    notes: list[str] = []
    status = "ok"
    fix = None
    mode = os.stat(state_dir).st_mode & 0o777
    if mode & 0o077:
        status, fix = "warn", f"chmod 700 {state_dir}"
        notes.append(f"readable by other users (mode {mode:03o}); it holds the WebSocket token and logs")
    free = shutil.disk_usage(state_dir).free
    details["freeBytes"] = free
    if free < LOW_DISK_BYTES:
        status, fix = "warn", "free some disk space: the session log stops growing when the disk is full"
        notes.append(f"only {free // (1024 * 1024)} MiB free")
    checks.append(
        Check(
            "state dir",
            status,
            state_dir + (f": {'; '.join(notes)}" if notes else " (writable)"),
            fix,
            details,
        )
    )
    checks.append(check_store(os.path.join(state_dir, "sessions.db")))
    checks.append(check_logs(state_dir))
    return checks


def check_store(path: str) -> Check:
    if not os.path.exists(path):
        return Check(
            "session store",
            "ok",
            f"{path} does not exist yet (created on first start)",
            details={"path": path},
        )
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
        try:
            rows = [r[0] for r in db.execute("PRAGMA integrity_check").fetchall()]
            sessions = db.execute("SELECT count(*) FROM sessions WHERE deleted = 0").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error as exc:
        return Check(
            "session store",
            "error",
            f"{path} cannot be read: {exc}",
            f"if no daemon is running, move {path} (and its -wal/-shm files) aside; a new store is created on start",
            {"path": path},
        )
    if rows != ["ok"]:
        return Check(
            "session store",
            "error",
            f"{path} is damaged: {'; '.join(rows[:3])}",
            f"stop the daemons, then recover with `sqlite3 {path} .recover > dump.sql` or move the file aside",
            {"path": path, "integrity": rows[:20]},
        )
    # The log holds every prompt and answer: only its user may read it (WAL and SHM too).
    loose = [
        f"{os.path.basename(f)} {os.stat(f).st_mode & 0o777:03o}"
        for f in (path, path + "-wal", path + "-shm")
        if os.path.exists(f) and os.stat(f).st_mode & 0o077
    ]
    if loose:
        return Check(
            "session store",
            "warn",
            f"{path}: readable by other users ({', '.join(loose)}); it holds every session's history",
            f"chmod 600 {path}*",
            {"path": path, "sessions": sessions},
        )
    return Check(
        "session store",
        "ok",
        f"{path}: integrity ok, {sessions} sessions",
        details={"path": path, "sessions": sessions},
    )


async def check_postgres_store(url: str) -> Check:
    from bridge.store.pg_probe import probe

    found = await probe(url)
    details: dict[str, Any] = {"url": found.where, "schemaVersion": found.version}
    if found.error is not None:
        return Check(
            "session store",
            "error",
            found.error,
            "check the server, the URL (host, port, database) and the password (PGPASSWORD or ~/.pgpass)",
            details,
        )
    if found.version is None:
        return Check("session store", "ok", f"{found.where}: reachable, no schema yet (created on first start)", details=details)
    if found.too_new:
        return Check(
            "session store",
            "error",
            f"{found.where} has schema version {found.version}, newer than this agent-bridge knows",
            "upgrade agent-bridge, or use another database",
            details,
        )
    if found.outdated:
        return Check(
            "session store", "ok", f"{found.where}: schema {found.version}, upgraded on the next start", details=details
        )
    details.update(sessions=found.sessions, daemons=found.daemons)
    return Check(
        "session store",
        "ok",
        f"{found.where}: schema {found.version}, {found.sessions} sessions, {found.daemons} live daemon(s)",
        details=details,
    )


def check_logs(state_dir: str) -> Check:
    directory = os.path.join(state_dir, "logs")
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    except OSError as exc:
        return Check(
            "logs",
            "warn",
            f"cannot create {directory}: {exc.strerror or exc}",
            "fix the state dir's permissions",
        )
    if not os.access(directory, os.W_OK):
        return Check("logs", "warn", f"{directory} is not writable", "fix its permissions")
    return Check("logs", "ok", f"daily log files in {directory}", details={"path": directory})


# -- agents -----------------------------------------------------------------------------------------
async def check_agent(report: AgentReport, spec: AgentSpec, state_dir: str, handshake_timeout: float) -> None:
    env = binaries.agent_env(spec)
    found = binaries.locate(spec.command, env)
    if found.path is None:
        ev = Evidence(agent=spec.name, command=spec.command, kind=found.problem)
        diagnosis = classify(ev)
        assert diagnosis is not None
        where = ", ".join(found.searched) if found.searched else spec.command
        if found.problem == "not_found" and not report.required:
            hint = INSTALL_HINTS.get(spec.name)
            report.checks.append(
                Check(
                    "installed",
                    "skip",
                    "not installed" + (f" (install: {hint})" if hint else ""),
                    None,
                    {"searched": found.searched},
                )
            )
            return
        summary = f"{diagnosis.summary}" + (f" (looked in: {where})" if found.problem == "not_found" else "")
        report.checks.append(
            Check("installed", "error", summary, diagnosis.fix, {"searched": found.searched})
        )
        return
    report.path = found.path
    daemon_path = os.environ.get("PATH", os.defpath)
    via_login = os.sep not in spec.command and shutil.which(spec.command, path=daemon_path) is None
    report.checks.append(
        Check(
            "installed",
            "ok",
            found.path + (" (found through the login shell's PATH)" if via_login else ""),
            details={"path": found.path, "viaLoginShell": via_login},
        )
    )
    version = await binaries.version_of(found.path, env)
    report.checks.append(version_check(spec, version))
    report.version = version.version
    if report.checks[-1].status == "error":
        return  # it does not even run; a handshake would say the same again
    if spec.protocol == "acp":
        handshake = await handshake_check(spec, state_dir, handshake_timeout)
        report.checks.append(handshake)
        # No --version, but the handshake says which version it is.
        said = (handshake.details.get("agentInfo") or {}).get("version")
        if report.version is None and isinstance(said, str) and said:
            report.version = said
            report.checks[1] = Check(
                "version", "ok", f"{said} (from its handshake)", details={"version": said}
            )
    creds = credentials_check(spec, env)
    if creds is not None:
        if creds.status == "error" and not report.required:
            creds.status = "warn"
        report.checks.append(creds)


def version_check(spec: AgentSpec, result: binaries.VersionResult) -> Check:
    if result.timed_out:
        return Check(
            "version",
            "warn",
            f"`{spec.command} --version` did not answer in time",
            "run it in a terminal to see why",
        )
    if result.version is None:
        output = default_redactor().text(result.output.strip())
        ev = Evidence(agent=spec.name, command=spec.command, exit_code=result.exit_code, stderr=output)
        diagnosis = classify(ev)
        failed = f"`{spec.command} --version` " + (
            f"failed (exit code {result.exit_code})" if result.exit_code else "printed no version"
        )
        # Only a failure that means the program cannot run is an error: many agents simply
        # have no --version (or print usage for it).
        if diagnosis is not None and diagnosis.kind in BROKEN:
            where = f": {diagnosis.line}" if diagnosis.line else ""
            return Check(
                "version", "error", f"{diagnosis.summary}{where}", diagnosis.fix, {"kind": diagnosis.kind}
            )
        return Check("version", "warn", f"version unknown: {failed}", None, {"output": output[-500:]})
    from bridge.agents import PACKAGES, outside_range, package_named

    # By the binary first: a configured agent may run a built-in's CLI under another name.
    pkg = package_named(os.path.basename(spec.command)) or PACKAGES.get(spec.name)
    why = outside_range(pkg.agent, result.version) if pkg is not None else None
    if why is not None and pkg is not None:
        hint = INSTALL_HINTS.get(pkg.agent, "")
        return Check(
            "version",
            "warn",
            f"{result.version}: {why}",
            f"install a tested version if something fails{f' (`{hint}`)' if hint else ''}",
            {"version": result.version},
        )
    return Check("version", "ok", result.version, details={"version": result.version})


async def handshake_check(spec: AgentSpec, state_dir: str, seconds: float) -> Check:
    from adapters.registry import registry

    factory = registry().get(spec.protocol)
    if factory is None:
        return Check("handshake", "error", f"no adapter for protocol {spec.protocol!r}", None)
    adapter = factory(spec, AdapterEnv(state_dir=state_dir, handshake_timeout=seconds))
    try:
        # The adapter bounds the handshake itself; this bounds everything else (spawn, stop).
        with anyio.fail_after(seconds + 15):
            probe = await adapter.probe()
    except TimeoutError:
        return Check(
            "handshake",
            "error",
            f"the handshake did not finish within {seconds + 15:g} s",
            "run the agent in a terminal",
        )
    except Exception as exc:  # adapters raise from inside task groups: look into the group
        found = _agent_error(exc)
        if found is None:
            raise
        ev = evidence_of(
            found, agent=spec.name, command=spec.command, cmdline=shlex.join([spec.command, *spec.args])
        )
        diagnosis = classify(ev)
        redactor = default_redactor()
        details = {"code": found.code, "data": redactor.value(found.data)}
        if diagnosis is None:
            return Check("handshake", "error", redactor.text(found.message), None, details)
        details["kind"] = diagnosis.kind
        summary = f"{diagnosis.summary}: {found.message}"
        return Check("handshake", "error", redactor.text(summary), diagnosis.fix, details)

    info = probe.agent_info or {}
    who = " ".join(str(info[k]) for k in ("name", "version") if info.get(k)) or "agent"
    methods = [m.get("id") for m in probe.auth_methods if isinstance(m, dict)]
    details = {"protocolVersion": probe.protocol_version, "agentInfo": info, "authMethods": methods}
    if probe.protocol_version != 1:
        return Check(
            "handshake",
            "error",
            f"{who} speaks ACP version {probe.protocol_version}; agent-bridge speaks version 1",
            f"install a version of {spec.command} that supports ACP v1",
            details,
        )
    return Check("handshake", "ok", f"ACP v{probe.protocol_version}, {who}", details=details)


def _agent_error(exc: BaseException) -> RpcError | None:
    """The error that explains a failed probe: the agent's own (it exited, never answered)
    rather than its consequences (a closed connection), wherever task groups put it."""
    found: list[RpcError] = []

    def walk(e: BaseException) -> None:
        if isinstance(e, RpcError):
            found.append(e)
        elif isinstance(e, BaseExceptionGroup):
            for inner in e.exceptions:
                walk(inner)

    walk(exc)
    return next((e for e in found if isinstance(e, AgentError)), found[0] if found else None)


# -- credentials (never sending anything anywhere) ---------------------------------------------------
def credentials_check(spec: AgentSpec, env: Mapping[str, str]) -> Check | None:
    fam = family(spec.name, spec.command)
    if fam == "claude":
        return _claude_credentials(spec, env)
    if fam == "codex":
        return _codex_credentials(spec, env)
    if fam == "gemini":
        return _gemini_credentials(spec, env)
    return None


def _found(what: str, details: dict[str, Any]) -> Check:
    return Check("credentials", "ok", what, details=details)


def _missing(spec: AgentSpec, looked: str) -> Check:
    ev = Evidence(agent=spec.name, command=spec.command, kind="auth")
    diagnosis = classify(ev)
    assert diagnosis is not None
    return Check(
        "credentials",
        "error",
        f"not logged in: no credentials found ({looked})",
        diagnosis.fix,
        {"kind": "auth"},
    )


def _home(env: Mapping[str, str]) -> str:
    return env.get("HOME") or os.path.expanduser("~")


def _claude_credentials(spec: AgentSpec, env: Mapping[str, str]) -> Check:
    for key in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"):
        if env.get(key):
            return _found(f"{key} is set", {"source": key})
    for key, what in (
        ("CLAUDE_CODE_USE_BEDROCK", "Amazon Bedrock"),
        ("CLAUDE_CODE_USE_VERTEX", "Google Vertex AI"),
    ):
        if env.get(key) not in (None, "", "0"):
            return _found(f"uses {what} ({key}); its own credentials apply", {"source": key})
    config_dir = env.get("CLAUDE_CONFIG_DIR") or os.path.join(_home(env), ".claude")
    creds = os.path.join(config_dir, ".credentials.json")
    if os.path.isfile(creds):
        return _found(f"logged in ({creds})", {"source": creds})
    settings = os.path.join(config_dir, "settings.json")
    if _json_has(settings, "apiKeyHelper"):
        return _found(f"apiKeyHelper in {settings}", {"source": settings})
    if sys.platform == "darwin":
        return Check(
            "credentials",
            "warn",
            "no API key in the environment; a claude.ai login may be in the macOS keychain (not checked)",
            "if prompts fail with 'not logged in', run `claude` in a terminal and log in with /login",
        )
    return _missing(spec, f"ANTHROPIC_API_KEY, ANTHROPIC_AUTH_TOKEN, CLAUDE_CODE_OAUTH_TOKEN, {creds}")


def _codex_credentials(spec: AgentSpec, env: Mapping[str, str]) -> Check:
    for key in ("OPENAI_API_KEY", "CODEX_API_KEY"):
        if env.get(key):
            return _found(f"{key} is set", {"source": key})
    home = env.get("CODEX_HOME") or os.path.join(_home(env), ".codex")
    auth = os.path.join(home, "auth.json")
    if os.path.isfile(auth):
        return _found(f"logged in ({auth})", {"source": auth})
    # A custom model provider needs no OpenAI login, only its own key (if any).
    try:
        with open(os.path.join(home, "config.toml"), "rb") as f:
            config = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError):
        config = {}
    provider = config.get("model_provider")
    if isinstance(provider, str) and provider != "openai":
        entry = (config.get("model_providers") or {}).get(provider) or {}
        env_key = entry.get("env_key") if isinstance(entry, dict) else None
        if isinstance(env_key, str) and not env.get(env_key):
            return Check(
                "credentials",
                "error",
                f"model provider {provider!r} reads its key from {env_key}, which is not set",
                f"set {env_key} in the environment agent-bridge starts agents with "
                f"(or in `env` under [agents.{spec.name}])",
                {"provider": provider, "envKey": env_key},
            )
        return _found(f"uses model provider {provider!r} from {home}/config.toml", {"provider": provider})
    return _missing(spec, f"OPENAI_API_KEY, CODEX_API_KEY, {auth}")


def _gemini_credentials(spec: AgentSpec, env: Mapping[str, str]) -> Check:
    for key in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_GENAI_USE_GCA"):
        if env.get(key):
            return _found(f"{key} is set", {"source": key})
    oauth = os.path.join(_home(env), ".gemini", "oauth_creds.json")
    if os.path.isfile(oauth):
        return _found(f"logged in ({oauth})", {"source": oauth})
    return _missing(spec, f"GEMINI_API_KEY, GOOGLE_API_KEY, {oauth}")


def _json_has(path: str, key: str) -> bool:
    import json

    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and bool(data.get(key))


# -- output -------------------------------------------------------------------------------------------
MARK = {"ok": "ok", "warn": "WARN", "error": "FAIL", "skip": "--"}


def render(report: Report) -> str:
    redact = default_redactor().text
    lines = [f"agent-bridge {__version__} doctor", ""]
    width = max(len(c.name) for c in report.checks)
    for c in report.checks:
        lines.append(f"  {MARK[c.status]:<4}  {c.name:<{width}}  {redact(c.summary)}")
        if c.fix and c.status in ("warn", "error"):
            lines.append(f"        {'':<{width}}  fix: {redact(c.fix)}")
    lines += ["", "agents:"]
    name_width = max((len(a.name) for a in report.agents), default=4)
    for a in report.agents:
        head = a.version or ""
        command = " ".join(a.command.split())  # one line, whatever the args hold
        command = command if len(command) <= 70 else command[:67] + "..."
        lines.append(
            f"  {MARK[a.status]:<4}  {a.name:<{name_width}}  {a.protocol:<6} {command}  {head}".rstrip()
        )
        for c in a.checks:
            if c.status == "ok" and c.name in ("version",):
                continue
            lines.append(f"        {'':<{name_width}}  {c.name}: {redact(c.summary)}")
            if c.fix and c.status in ("warn", "error"):
                lines.append(f"        {'':<{name_width}}    fix: {redact(c.fix)}")
    problems = sum(c.status == "error" for c in report.checks) + sum(
        c.status == "error" for a in report.agents for c in a.checks
    )
    warnings = sum(c.status == "warn" for c in report.checks) + sum(
        c.status == "warn" for a in report.agents for c in a.checks
    )
    lines.append("")
    if problems:
        lines.append(
            f"{problems} problem{'s' * (problems != 1)} found"
            + (f", {warnings} warning{'s' * (warnings != 1)}" if warnings else "")
            + "."
        )
    else:
        lines.append(
            "No problems found" + (f" ({warnings} warning{'s' * (warnings != 1)})" if warnings else "") + "."
        )
    return "\n".join(lines) + "\n"
