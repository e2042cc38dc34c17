"""How a failed task's result becomes the one-line reason the CLI prints."""

from __future__ import annotations

from stagectl.runner import _failure_message


def test_a_failed_loop_names_its_items_reasons_not_ansibles_summary() -> None:
    result = {
        "msg": "One or more items failed",
        "results": [
            {"failed": False, "rc": 0, "stderr": ""},
            {"failed": True, "rc": 1, "stderr": 'nginx: [error] open() "/run/nginx.pid" failed\n'},
        ],
    }
    assert _failure_message(result) == 'nginx: [error] open() "/run/nginx.pid" failed'


def test_a_plain_failure_gives_its_message_then_its_stderr() -> None:
    assert _failure_message({"msg": "unknown project 'x'", "stderr": "ignored"}) == "unknown project 'x'"
    assert _failure_message({"rc": 2, "stderr": "boom\n"}) == "boom"
    assert _failure_message({}) == "failed (no message)"
