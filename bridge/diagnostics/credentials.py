"""Whether an agent's credentials are present, for the agents whose login is known: an API
key in the environment, or the CLI's own credentials file. Nothing is sent anywhere."""

from __future__ import annotations

import os
import sys
import tomllib
from collections.abc import Mapping
from typing import Any

from bridge.core.adapter import AgentSpec
from bridge.diagnostics.classify import Evidence, classify, family
from bridge.diagnostics.report import Check


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
