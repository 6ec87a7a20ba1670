"""The one redaction: URLs' user info, libpq passwords, token parameters and the credentials
the environment holds, for every caller (alerts, the listener, the lake, the edge box)."""

from __future__ import annotations

import pytest

from flows.alerts.redaction import SECRET_ENV, redact
from flows.edge.run import _safe
from flows.store.lake_url import LakeError, check_lake_setting


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("ducklake:postgres:dbname=lake host=127.0.0.1 password=hunter22 port=5432",
         "ducklake:postgres:dbname=lake host=127.0.0.1 password=*** port=5432"),
        ("dbname=x password = 'two words' host=y", "dbname=x password = *** host=y"),
        ("PUT https://AKIA1234:s3cr3t@minio.local/traps failed",
         "PUT https://***@minio.local/traps failed"),
        ("https://ghp_tokenOnly123@host/path", "https://***@host/path"),
        ("json://host/hook?token=abcdef&x=1", "json://host/hook?token=***&x=1"),
        ("nothing secret here", "nothing secret here"),
    ],
)  # fmt: skip
def test_redact_blanks_every_kind_of_credential(text: str, shown: str) -> None:
    assert redact(text) == shown


def test_environment_credentials_are_redacted_without_being_registered(monkeypatch) -> None:
    assert "AWS_SECRET_ACCESS_KEY" in SECRET_ENV and "PGPASSWORD" in SECRET_ENV
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI-K7MDENG")
    monkeypatch.setenv("PGPASSWORD", "pg-Passw0rd-77")
    text = "auth failed for wJalrXUtnFEMI-K7MDENG (password pg-Passw0rd-77)"
    assert redact(text) == "auth failed for *** (password ***)"
    # the edge box and the lake's messages go through the same function
    assert _safe(OSError("upload: wJalrXUtnFEMI-K7MDENG refused\nsecond line")) == (
        "OSError: upload: *** refused"
    )
    with pytest.raises(LakeError) as caught:
        check_lake_setting("ducklake:mysql:password=pg-Passw0rd-77", None)
    assert "pg-Passw0rd-77" not in str(caught.value) and "***" in str(caught.value)
