"""The session inspector: a read-only web view of the store's sessions at `/` of the
`serve --listen` port (spec/inspector.md). `auth` holds the login rules, `views` turns the
store into JSON, `app` is the ASGI app; the page is static files in `static/`."""
