"""The registry commands of the CLI, run as a user would, on a throw-away SQLite database."""

from __future__ import annotations

from pathlib import Path

import click
import pandapower
import pytest
import typer
from typer.testing import CliRunner

from gridbridge.adapters.network_io import load_pandapower_source
from gridbridge.cli.main import app
from gridbridge.store import schema
from gridbridge.store.database import make_engine, session_factory
from gridbridge.store.uow import SqlUnitOfWork

runner = CliRunner()


@pytest.fixture
def db_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("GRIDBRIDGE_DATABASE_URL", url)
    return url


def _invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def _all_command_paths() -> list[list[str]]:
    root = typer.main.get_command(app)
    paths: list[list[str]] = []

    def walk(command: click.Command, path: list[str]) -> None:
        paths.append(path)
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                walk(sub, [*path, name])

    walk(root, [])
    return paths


@pytest.mark.parametrize("path", _all_command_paths(), ids=lambda p: " ".join(p) or "gridbridge")
def test_every_command_has_help(path: list[str]) -> None:
    code, output = _invoke(*path, "--help")
    assert code == 0, output
    assert "Usage:" in output


def test_admin_flow_network_import_and_audit(db_env: str) -> None:
    assert _invoke("admin", "participant", "--name", "Lakeshore Hydro", "--role", "dso")[0] == 0
    assert _invoke("admin", "participant", "--name", "IESO", "--role", "tso")[0] == 0
    code, output = _invoke("admin", "participant", "--name", "IESO", "--role", "tso")
    assert code == 2
    assert "participant.name_taken" in output
    assert _invoke("admin", "user", "--participant", "Lakeshore Hydro", "--username", "ops")[0] == 0
    code, token = _invoke("admin", "token", "--username", "ops")
    assert code == 0
    assert token.strip().startswith("gb_")
    code, output = _invoke(
        "admin",
        "tdi",
        "--name",
        "Leaside TS",
        "--dso",
        "Lakeshore Hydro",
        "--model",
        "alt2_hybrid_dso",
        "--import-limit-kw",
        "60000",
        "--export-limit-kw",
        "20000",
    )
    assert code == 0, output
    code, output = _invoke(
        "admin",
        "tdi",
        "--name",
        "Other TS",
        "--dso",
        "IESO",
        "--model",
        "total_dso",
        "--import-limit-kw",
        "1",
        "--export-limit-kw",
        "1",
    )
    assert code == 2
    assert "tdi.owner_not_dso" in output
    code, output = _invoke("network", "import", "simbench:no-such-grid", "--tdi", "Leaside TS")
    assert code == 2
    assert "network.unknown_simbench_code" in output
    code, output = _invoke("network", "import", "simbench:1-LV-rural1--0-sw", "--tdi", "Leaside TS")
    assert code == 0, output
    assert "connection points" in output
    code, output = _invoke("network", "import", "simbench:1-LV-rural1--0-sw", "--tdi", "Leaside TS")
    assert code == 2  # replacing needs --replace
    exported = Path(db_env.removeprefix("sqlite:///")).with_name("exported.json")
    code, output = _invoke("network", "export", "--tdi", "Leaside TS", "--out", str(exported))
    assert code == 0, output
    original = load_pandapower_source("simbench:1-LV-rural1--0-sw")
    roundtrip = pandapower.from_json(str(exported))
    pandapower.runpp(original)
    pandapower.runpp(roundtrip)
    assert list(roundtrip.bus.name) == list(original.bus.name)
    assert roundtrip.res_bus.vm_pu.to_numpy() == pytest.approx(original.res_bus.vm_pu.to_numpy(), abs=1e-9)
    code, output = _invoke("admin", "revoke", "--username", "ops")
    assert code == 0
    assert "revoked 1 token" in output
    with SqlUnitOfWork(session_factory(make_engine(db_env))) as uow:
        from gridbridge.domain.errors import AuthenticationFailed
        from gridbridge.services.participants import authenticate

        with pytest.raises(AuthenticationFailed):
            authenticate(uow, token.strip())
    code, output = _invoke("audit", "verify")
    assert code == 0, output
    assert "intact" in output
    with SqlUnitOfWork(session_factory(make_engine(db_env))) as uow:
        actions = [e.action for e in uow.audit.entries()]
    assert actions.count("network.import") == 1  # the refused imports left nothing behind


def test_unknown_tdi_is_a_clear_error(db_env: str) -> None:
    code, output = _invoke("network", "import", "simbench:1-LV-rural1--0-sw", "--tdi", "Nowhere TS")
    assert code == 2
    assert "not_found" in output
    assert "Nowhere TS" in output


def test_db_upgrade_and_current(db_env: str) -> None:
    code, output = _invoke("db", "upgrade")
    assert code == 0
    code, output = _invoke("db", "current")
    assert code == 0
    for head in schema.head_revisions():
        assert head in output


@pytest.mark.slow
def test_small_demo_runs_and_refuses_one_double_enrolment(db_env: str) -> None:
    code, output = _invoke("demo", "--ders", "60", "--no-day")  # the day: test_demo_day.py
    assert code == 0, output
    assert "aggregation.double_enrolment" in output or "already in aggregation" in output
    assert "audit chain: intact" in output
    code, output = _invoke("demo", "--ders", "60", "--no-day")  # a demo database is rebuilt, not refused
    assert code == 0, output
