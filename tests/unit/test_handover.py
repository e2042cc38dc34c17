"""The switch-time watch of the release tests (stagectl.sandbox.handover): what it reports from
the polls that saw the hand-over file, and that it stops with its block."""

from __future__ import annotations

import time

import pytest

from stagectl.sandbox.handover import HandOverWatch, live_file, watch_hand_over


def test_live_file_is_the_one_the_project_nginx_reads() -> None:
    assert live_file("beryl3") == "/opt/projects/beryl3/config/nginx-live/django.conf"


def test_summary_says_how_long_the_file_was_seen() -> None:
    watch = HandOverWatch("server", "/x")
    assert watch.seconds() is None
    assert watch.summary() == "never switched to a candidate"
    watch.first, watch.last = 10.0, 17.4
    assert watch.seconds() == pytest.approx(7.4)
    assert watch.summary() == "on the candidate for ~7 s"


def test_the_watch_stops_with_its_block_and_sees_nothing_on_no_server() -> None:
    # Leaving the block joins the polling thread: the test ends only if it stopped.
    with watch_hand_over("stagectl-no-such-server-for-this-test", "beryl3", interval=0.05) as watch:
        time.sleep(0.2)
    assert watch.stop.is_set()
    assert watch.seconds() is None
