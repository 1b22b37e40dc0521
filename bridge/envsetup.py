"""The environment agents are launched with: the daemon's own, completed with what the
user's login shell would give, plus the config's `[env]` and `path_prepend`.

Editors often start agent-bridge from a GUI session whose PATH lacks what the user's shell
rc files add (nvm, volta, asdf, fnm, pyenv shims, ~/.local/bin) — the "works in the terminal,
not in the editor" failure. So once per daemon, before the first agent starts, the user's shell is run
as a login + interactive shell to print its environment (what VS Code does too); the result
is cached in `<state-dir>/login-env.json` for `CACHE_TTL` seconds: only the variables the
rc files set or changed (mode 0600: they may include keys exported there, which already sit
in those files in plain text).

Merging adds, it never overrides: variables the daemon already has keep their values (the
editor may have set them on purpose), variables only the login shell has are added, and
PATH is the daemon's entries followed by the login shell's missing ones. `path_prepend`
entries go first; `[env]` values override the daemon's; an agent's own `env` wins over all.
When the shell is slow (`TIMEOUT`), broken or unknown, agents get the daemon's environment
and the reason is logged (and shown by `agent-bridge doctor`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import anyio

from bridge.diagnostics.redact import default as default_redactor

log = logging.getLogger(__name__)

CACHE_FILE = "login-env.json"
CACHE_TTL = 3600.0
TIMEOUT = 5.0
MARKER = "__agent_bridge_env__"
# Shells that take `-l -i -c CMD`; others (csh, tcsh, nu, pwsh...) are not run.
SHELLS = frozenset({"bash", "zsh", "fish", "sh", "dash", "ksh", "mksh", "oksh", "yash"})
# Shell bookkeeping that means nothing outside that shell.
IGNORED = frozenset(
    {"_", "SHLVL", "PWD", "OLDPWD", "PS1", "PS2", "PS3", "PS4", "PROMPT", "PROMPT_COMMAND", "RPROMPT"}
    | {"HISTFILE", "HISTSIZE", "HISTFILESIZE", "COLUMNS", "LINES", "TERM_SESSION_ID", "SHELL_SESSION_ID"}
)


@dataclass
class LoginEnv:
    """What the login shell gave (or why it gave nothing)."""

    env: dict[str, str] = field(default_factory=dict)
    shell: str | None = None
    source: str = "none"  # "shell" | "cache" | "none" | "disabled"
    error: str | None = None
    seconds: float = 0.0


def user_shell(env: Mapping[str, str]) -> str | None:
    shell = env.get("SHELL")
    if not shell:
        with contextlib.suppress(KeyError, ImportError):
            import pwd

            shell = pwd.getpwuid(os.getuid()).pw_shell
    return shell or None


async def run_login_shell(shell: str, base: Mapping[str, str], seconds: float = TIMEOUT) -> dict[str, str]:
    """Start `shell` as a login, interactive shell and return the environment it ends up with.
    Raises `OSError`/`TimeoutError`/`ValueError` with a reason a person can read."""
    name = os.path.basename(shell).lstrip("-")
    if name not in SHELLS:
        raise ValueError(f"login shell {shell} is not one agent-bridge knows how to run")
    # The daemon's own interpreter prints the environment: portable (BSD `env` has no -0)
    # and unambiguous; the marker skips whatever rc files print first (banners, motd).
    printer = f"import json,os,sys;sys.stdout.write({MARKER!r}+json.dumps(dict(os.environ)))"
    command = f"{shlex.quote(sys.executable)} -I -c {shlex.quote(printer)}"
    started = time.monotonic()
    proc = await anyio.open_process(
        [shell, "-l", "-i", "-c", command],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=dict(base),
        start_new_session=True,  # no controlling terminal; and its group can be killed whole
    )
    out = bytearray()
    env: object = None
    try:
        with anyio.fail_after(seconds):
            assert proc.stdout is not None
            # Stop at the first complete answer: a job an rc file started may keep stdout open.
            async for chunk in proc.stdout:
                out.extend(chunk)
                env = _parse(out)
                if env is not None:
                    break
    except TimeoutError:
        raise TimeoutError(
            f"{shell} -l -i took more than {seconds:g} s to start (rc files waiting for input?)"
        ) from None
    finally:
        # The whole group: the shell and anything its rc files left running.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with anyio.CancelScope(shield=True):
            await proc.aclose()
    if not isinstance(env, dict):
        raise ValueError(
            f"{shell} -l -i exited with status {proc.returncode} without printing its environment"
        )
    log.debug("login shell %s answered in %.0f ms", shell, (time.monotonic() - started) * 1000)
    return {str(k): str(v) for k, v in env.items()}


def _parse(out: bytearray) -> object:
    at = out.rfind(MARKER.encode())
    if at < 0:
        return None
    try:
        return json.loads(out[at + len(MARKER) :])
    except ValueError:
        return None  # not all there yet


def merge_path(first: str, then: str) -> str:
    """`first`'s entries, then those of `then` that `first` lacks (order kept, no duplicates)."""
    seen: set[str] = set()
    out: list[str] = []
    for entry in [*first.split(os.pathsep), *then.split(os.pathsep)]:
        if entry and entry not in seen:
            seen.add(entry)
            out.append(entry)
    return os.pathsep.join(out)


def merge(
    base: Mapping[str, str],
    login: Mapping[str, str],
    extra: Mapping[str, str] | None = None,
    path_prepend: Sequence[str] = (),
) -> dict[str, str]:
    """The agents' base environment (see the module docstring for the order)."""
    env = dict(base)
    for key, value in login.items():
        if key in IGNORED:
            continue
        if key == "PATH":
            env["PATH"] = merge_path(base.get("PATH", ""), value)
        elif key not in env:
            env[key] = value
    env.update(extra or {})
    if path_prepend:
        prepend = os.pathsep.join(os.path.expanduser(p) for p in path_prepend)
        env["PATH"] = merge_path(prepend, env.get("PATH", os.defpath))
    return env


def default_data_dir(env: Mapping[str, str] = os.environ) -> str:
    """Where `agent-bridge install` puts agent CLIs (`<data-dir>/agents`): env
    `AGENT_BRIDGE_DATA_DIR`, else `$XDG_DATA_HOME/agent-bridge` (`~/.local/share/agent-bridge`)."""
    if env.get("AGENT_BRIDGE_DATA_DIR"):
        return env["AGENT_BRIDGE_DATA_DIR"]
    base = env.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "agent-bridge")


def agents_prefix(env: Mapping[str, str] = os.environ) -> str:
    """The npm prefix of the agents `agent-bridge install` installed."""
    return os.path.join(default_data_dir(env), "agents")


def agents_bin(env: Mapping[str, str] = os.environ) -> str:
    """Their binaries: searched after PATH, so an agent the user installed wins."""
    return os.path.join(agents_prefix(env), "node_modules", ".bin")


def lookup_path(path: str) -> str:
    """`path` (a PATH value) with the bridge's own agent prefix after it: where agent
    binaries are looked for. Agents still get `path` itself as their PATH."""
    return merge_path(path, agents_bin())


class Environment:
    """The environment for agents, resolved once per daemon (`resolve()`), applied to each
    spawn (`complete()`)."""

    def __init__(
        self,
        state_dir: str | None,
        *,
        login_shell: bool = True,
        extra: Mapping[str, str] | None = None,
        path_prepend: Sequence[str] = (),
        base: Mapping[str, str] | None = None,
        timeout: float = TIMEOUT,
        ttl: float = CACHE_TTL,
    ) -> None:
        self.state_dir = state_dir
        self.login_shell = login_shell
        self.extra = dict(extra or {})
        self.path_prepend = list(path_prepend)
        self.base = dict(os.environ if base is None else base)
        self.timeout = timeout
        self.ttl = ttl
        self.login = LoginEnv(source="disabled" if not login_shell else "none")
        self.merged = merge(self.base, {}, self.extra, self.path_prepend)
        self._ready = anyio.Event()
        self._lock = anyio.Lock()

    @property
    def cache_path(self) -> str | None:
        return os.path.join(self.state_dir, CACHE_FILE) if self.state_dir else None

    @property
    def resolved(self) -> bool:
        return self._ready.is_set()

    async def wait(self) -> None:
        await self._ready.wait()

    async def resolve(self, *, refresh: bool = False) -> LoginEnv:
        """Find the login shell's environment (cache, else the shell), then the merged env.
        Never raises (other than cancellation): failures leave the daemon's environment."""
        async with self._lock:
            if self.resolved and not refresh:
                return self.login
            if self.login_shell:
                self.login = await self._login_env(refresh)
                # Keys exported by rc files are secrets like the daemon's own.
                default_redactor().add_env(self.login.env)
            self.merged = merge(self.base, self.login.env, self.extra, self.path_prepend)
            self._ready.set()
            return self.login

    async def _login_env(self, refresh: bool) -> LoginEnv:
        shell = user_shell(self.base)
        if shell is None:
            return LoginEnv(error="no login shell: SHELL is not set")
        if not refresh:
            cached = self._read_cache(shell)
            if cached is not None:
                return cached
        started = time.monotonic()
        try:
            env = await run_login_shell(shell, self.base, self.timeout)
        except (OSError, TimeoutError, ValueError) as exc:
            log.warning("agents get the daemon's environment only: %s", exc)
            return LoginEnv(shell=shell, error=str(exc))
        # Only what the rc files set or changed: the rest is the daemon's own environment
        # (the shell inherits it), which is neither useful to merge nor to write to disk.
        env = {k: v for k, v in env.items() if k == "PATH" or self.base.get(k) != v}
        found = LoginEnv(env, shell, "shell", seconds=time.monotonic() - started)
        self._write_cache(found)
        return found

    def _read_cache(self, shell: str) -> LoginEnv | None:
        path = self.cache_path
        if path is None:
            return None
        try:
            with open(path, encoding="utf-8") as f:
                raw = json.load(f)
            if raw.get("shell") != shell or time.time() - float(raw["at"]) > self.ttl:
                return None
            env = raw["env"]
            if not isinstance(env, dict):
                return None
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return LoginEnv({str(k): str(v) for k, v in env.items()}, shell, "cache")

    def _write_cache(self, found: LoginEnv) -> None:
        path = self.cache_path
        if path is None:
            return
        tmp = f"{path}.{os.getpid()}.tmp"
        try:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"shell": found.shell, "at": time.time(), "env": found.env}, f)
            os.replace(tmp, path)
        except OSError as exc:
            log.info("could not cache the login environment in %s: %s", path, exc)
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def complete(self, env: Mapping[str, str]) -> dict[str, str]:
        """`env` (built by an adapter from the daemon's environment plus the agent's own
        `env`) with the resolved additions: a value the adapter copied unchanged from the
        daemon's environment takes the merged one; a variable only the merge has is added
        unless the adapter removed it from the daemon's on purpose."""
        out = dict(env)
        for key, value in self.merged.items():
            if key not in out:
                if key not in self.base:
                    out[key] = value
            elif out[key] == self.base.get(key) and out[key] != value:
                out[key] = value
        return out

    def path(self) -> str:
        return self.merged.get("PATH", os.defpath)


_current: Environment | None = None


def install(environment: Environment | None) -> None:
    """Make `environment` the one every agent spawn uses (None: the daemon's environment)."""
    global _current
    _current = environment


def current() -> Environment | None:
    return _current
