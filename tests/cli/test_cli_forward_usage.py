"""``aiopersonalize-events forward`` with a Redis URL of another scheme is a usage error (exit 2), the URL unshown."""

from __future__ import annotations

import pytest

from aiopersonalize_events.cli import main


@pytest.mark.parametrize("url", ["http://user:hunter2@x", "http://x"])
def test_forward_with_a_redis_url_of_another_scheme_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    """--redis http://...: exit 2 naming --redis, not 1 after a failed run; a password in it is not shown."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFORWARDUSAGE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "forward-usage-secret")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    args = ["forward", "--redis", url, "--stream", "s", "--group", "g", "--tracking-id", "t"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--redis" in err
    assert "hunter2" not in err
