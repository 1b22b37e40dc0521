"""Diagnostics: secret redaction, recognising agents' known failure modes, and `doctor`.

`redact` and `classify` are pure (no I/O) and cheap to import: the daemon uses them on its
error path. `doctor` runs checks and is only imported by `agent-bridge doctor`."""
