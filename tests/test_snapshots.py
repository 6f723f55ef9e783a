"""Snapshots of the main screens at 80x24 and 200x50, from a farm frozen in time (tests/snapshot_app.py).

They are compared with the SVGs in tests/__snapshots__/; after a deliberate change of the UI, update
them with `scripts/test tests/test_snapshots.py --snapshot-update` and look at the new pictures.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, TabbedContent

from tests.snapshot_app import make_app


async def loaded(pilot: Pilot) -> None:
    for _ in range(100):
        if pilot.app.query_one("#jobs", DataTable).row_count >= 3:
            break
        await pilot.pause(0.05)
    await pilot.pause(0.2)


async def nodes_tab(pilot: Pilot) -> None:
    await loaded(pilot)
    pilot.app.query_one(TabbedContent).active = "nodes-tab"
    await pilot.pause(0.3)


@pytest.mark.parametrize("size", [(80, 24), (200, 50)])
def test_jobs_screen(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:  # noqa: ANN001
    assert snap_compare(make_app(tmp_path / "spool"), terminal_size=size, run_before=loaded)


@pytest.mark.parametrize("size", [(80, 24), (200, 50)])
def test_nodes_screen(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:  # noqa: ANN001
    assert snap_compare(make_app(tmp_path / "spool"), terminal_size=size, run_before=nodes_tab)
