"""One module per scenario; each returns a JSON-ready dict of figures and checks."""
