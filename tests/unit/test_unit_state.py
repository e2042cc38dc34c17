"""The `units_to_start` filter decides which timers a deploy enables and starts: only those that
`systemctl show` does not report as both enabled and active, so a settled server costs one
command for all of them."""

from __future__ import annotations

from stagectl.ansible_collections.stagectl.staging.plugins.filter.unit_state import (
    units_to_start,
    units_to_stop,
)


def show(*units: tuple[str, str, str]) -> str:
    return "\n\n".join(f"Id={unit}\nActiveState={active}\nUnitFileState={enabled}" for unit, active, enabled in units)


def test_enabled_and_active_units_need_nothing() -> None:
    text = show(("a.timer", "active", "enabled"), ("b@x.timer", "active", "enabled"))
    assert units_to_start(text, ["a.timer", "b@x.timer"]) == []


def test_a_disabled_or_stopped_unit_is_started() -> None:
    text = show(("a.timer", "inactive", "enabled"), ("b.timer", "active", "disabled"), ("c.timer", "active", "enabled"))
    assert units_to_start(text, ["a.timer", "b.timer", "c.timer"]) == ["a.timer", "b.timer"]


def test_a_unit_systemd_does_not_know_is_started() -> None:
    # systemctl show of a unit without a unit file: loaded nowhere, no file state.
    text = show(("a.timer", "active", "enabled")) + "\n\nId=new.timer\nActiveState=inactive\nUnitFileState="
    assert units_to_start(text, ["new.timer", "a.timer"]) == ["new.timer"]


def test_a_unit_missing_from_the_output_or_unreadable_output_is_started() -> None:
    assert units_to_start(show(("a.timer", "active", "enabled")), ["a.timer", "b.timer"]) == ["b.timer"]
    assert units_to_start("", ["a.timer"]) == ["a.timer"]
    assert units_to_start("Failed to connect to bus", ["a.timer"]) == ["a.timer"]


def test_only_a_unit_disabled_and_inactive_needs_no_stop() -> None:
    text = show(("a.timer", "inactive", "disabled"), ("b.timer", "inactive", "masked"), ("c.timer", "active", "disabled"),
                ("d.timer", "inactive", "enabled"))
    assert units_to_stop(text, ["a.timer", "b.timer", "c.timer", "d.timer"]) == ["c.timer", "d.timer"]


def test_a_unit_to_stop_that_systemd_does_not_know_or_that_is_not_shown_is_returned() -> None:
    # The module that turns it off then reports what is wrong, as it did before the read.
    text = "Id=gone.timer\nActiveState=inactive\nUnitFileState="
    assert units_to_stop(text, ["gone.timer", "unshown.timer"]) == ["gone.timer", "unshown.timer"]
    assert units_to_stop("Failed to connect to bus", ["a.timer"]) == ["a.timer"]
