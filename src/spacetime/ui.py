"""Terminal rendering (rich) for the CLI: status tables and live epoch progress."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

console = Console()


def print_status(reports: list[dict[str, Any]]) -> None:
    if not reports:
        console.print("No books yet: `spacetime run` starts one.")
        return
    for report in reports:
        table = Table(
            title=f"{report['book']} — {report['epochs']} epoch(s), {report['chapters']} chapter(s)",
            caption=report["topic"],
        )
        for column in ("agent", "discipline", "status", "rating", "born", "died", "replaced"):
            table.add_column(column, justify="right" if column in ("rating", "born", "died") else "left")
        for agent in report["roster"]:
            table.add_row(
                agent["name"],
                agent["discipline"],
                agent["status"],
                f"{agent['rating']:.1f}",
                str(agent["born_epoch"]),
                "" if agent["died_epoch"] is None else str(agent["died_epoch"]),
                agent["replaced"] or "",
            )
        console.print(table)
