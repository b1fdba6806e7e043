"""Settings shown to people (``qerberos config``, backups, ``/health/detailed``) carry no password."""

from __future__ import annotations

import pytest

from qerberos.settings import mask_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://qerberos:s3cret@db:5432/qerberos", "postgresql://qerberos:***@db:5432/qerberos"),
        ("postgresql://postgres@127.0.0.1/test", "postgresql://postgres@127.0.0.1/test"),
        ("sqlite:////var/lib/qerberos/qerberos.db", "sqlite:////var/lib/qerberos/qerberos.db"),
        ("https://user:s3cret@mlflow.example:5000", "https://user:***@mlflow.example:5000"),
        ("redis://:s3cret@redis:6379/0", "redis://:***@redis:6379/0"),
        (
            "postgresql://db/q?user=a&password=s3cret&sslmode=require",
            "postgresql://db/q?user=a&password=***&sslmode=require",
        ),
        ("https://[not-a-host", "***"),
    ],
)
def test_mask_url_hides_the_password_and_nothing_else(url: str, shown: str) -> None:
    assert shown == mask_url(url)
