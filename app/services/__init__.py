"""Use cases called by views, jobs and CLI commands. They change state; the caller commits."""
