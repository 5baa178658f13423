"""The lijiao command: serve, demo, keys and tokens."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from catalog.credentials import authenticate_token
from catalog.db import open_catalog
from catalog.models import Role
from envelope.signing import public_key_from_text
from exchange.cli import main


def test_serve_refuses_plaintext_unless_asked(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["serve", "--data-dir", str(tmp_path), "--listen", "127.0.0.1:0", "--metrics-listen", ""],
    )
    assert result.exit_code != 0
    assert "--insecure" in result.output and "--tls-cert" in result.output


def test_keys_generate_writes_a_private_key_and_prints_the_public_key(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    result = CliRunner().invoke(main, ["keys", "generate", str(path)])
    assert result.exit_code == 0, result.output
    assert path.stat().st_mode & 0o777 == 0o600
    assert len(public_key_from_text(result.stdout.strip())) == 32
    again = CliRunner().invoke(main, ["keys", "generate", str(path)])
    assert again.exit_code != 0 and "refusing to overwrite" in again.output


def test_tokens_issue_prints_a_token_the_gateway_accepts(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "tokens",
            "issue",
            "--role",
            "administrator",
            "--name",
            "ops",
            "--data-dir",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    sessions = open_catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    with sessions() as session:
        assert authenticate_token(session, token).role is Role.ADMINISTRATOR


def test_tokens_issue_explains_a_missing_department(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "tokens",
            "issue",
            "--role",
            "data-officer",
            "--name",
            "wang",
            "--data-dir",
            str(tmp_path),
        ],
    )
    assert result.exit_code != 0 and "--department" in result.output


def test_tokens_issue_reads_the_data_dir_from_the_environment(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["tokens", "issue", "--role", "auditor", "--name", "audit"],
        env={"LIJIAO_DATA_DIR": str(tmp_path)},
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "catalog.db").exists()


def test_the_demo_exchanges_every_record_intact(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "exchange.cli",
            "demo",
            "--records",
            "3000",
            "--batch-size",
            "250",
            "--keep",
            str(tmp_path / "demo"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "records intact                   3,000" in result.stdout
    assert "NOT_OWNER" in result.stdout
    assert "OK: every record arrived intact" in result.stdout
