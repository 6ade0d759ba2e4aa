"""``kallos db current|upgrade|downgrade`` on SQLite and PostgreSQL."""

from __future__ import annotations

from typer.testing import CliRunner

from kallos.cli.app import app
from kallos.data import Store, migrations

runner = CliRunner()


def _args(backend_url) -> list[str]:
    url, schema_name = backend_url
    return ["--database-url", url] + (["--schema", schema_name] if schema_name else [])


def test_db_upgrade_current_downgrade(backend_url):
    args = _args(backend_url)
    head = migrations.head_revision()

    res = runner.invoke(app, ["db", "current", *args])
    assert res.exit_code == 0, res.output
    assert "empty (no revision)" in res.output and f"head is {head}" in res.output

    res = runner.invoke(app, ["db", "upgrade", "--revision", "0001", *args])
    assert res.exit_code == 0, res.output
    assert res.output.strip() == "upgraded empty -> 0001"

    res = runner.invoke(app, ["db", "upgrade", *args])
    assert res.exit_code == 0 and res.output.strip() == f"upgraded 0001 -> {head}"
    res = runner.invoke(app, ["db", "upgrade", *args])
    assert res.exit_code == 0 and res.output.strip() == f"already at {head}"
    assert runner.invoke(app, ["db", "current", *args]).output.strip() == f"{head} (head)"

    res = runner.invoke(app, ["db", "downgrade", "0001", *args])
    assert res.exit_code == 0 and res.output.strip() == "downgraded to 0001"
    assert Store(*backend_url, migrate=False).current_revision() == "0001"


def test_db_bad_revision_is_a_clear_error(backend_url):
    res = runner.invoke(app, ["db", "upgrade", "--revision", "9999", *_args(backend_url)])
    assert res.exit_code == 2
    assert "9999" in res.output and "error" in res.output
