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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from bridge import envsetup
from bridge.config import INSTALL_HINTS, ConfigFile, agent_table
from bridge.core.adapter import AdapterEnv, AgentSpec
from bridge.diagnostics import binaries
from bridge.diagnostics.classify import Evidence, classify, evidence_of
from bridge.diagnostics.credentials import credentials_check
from bridge.diagnostics.redact import default as default_redactor
from bridge.diagnostics.report import AgentReport, Check, Report
from bridge.diagnostics.state_checks import check_postgres_store, check_state_dir
from bridge.errors import AgentError, RpcError, leaves
from bridge.process.lookup import locate
from bridge.process.versions import VersionResult, version_of
from bridge.store import pg_url

# Kinds that mean the program cannot run at all.
BROKEN = frozenset({"node_missing", "broken_install", "not_found", "not_executable"})


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


# -- agents -----------------------------------------------------------------------------------------
async def check_agent(report: AgentReport, spec: AgentSpec, state_dir: str, handshake_timeout: float) -> None:
    env = binaries.agent_env(spec)
    found = locate(spec.command, env)
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
    version = await version_of(found.path, env)
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


def version_check(spec: AgentSpec, result: VersionResult) -> Check:
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
    found = [e for e in leaves(exc) if isinstance(e, RpcError)]
    return next((e for e in found if isinstance(e, AgentError)), found[0] if found else None)
