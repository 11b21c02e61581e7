"""Plotly figures of the Epistemic Deck, built from the rows of ``spacetime.adapters.pg.deck`` (pure: no I/O).

Big books stay light in the browser: many agents are drawn as a few traces (segments separated by ``None``), not
one trace per agent, and only what a view needs is plotted.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

import plotly.graph_objects as go

SCORE_SCALE: list[tuple[float, str]] = [
    (0.0, "#b2182b"),
    (0.25, "#ef8a62"),
    (0.5, "#fddbc7"),
    (0.62, "#d1e5f0"),
    (0.8, "#67a9cf"),
    (1.0, "#2166ac"),
]
"""Insight 1 (red) … 10 (blue): diverging, readable for red-green colour blindness."""
WINNER = "#d4a017"
LOSER = "#c0392b"
ALIVE = "#2c7fb8"
DEAD = "#b0b0b0"
ORIGIN_COLOUR = {"builtin": "#2c7fb8", "custom": "#1b9e77", "bred": "#7b3294"}
RISK_COLOUR = {"next out": "#c0392b", "can fall": "#e67e22", "safe": "#27ae60"}
RATINGS_WINDOW = 100
"""A longer book first shows its last 100 epochs of ratings (the range slider below reaches the rest)."""
RATING_AXIS = "rating (Plackett–Luce μ)"


_MD_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")  # every ASCII punctuation character
_AUTOLINK = re.compile(r"(?i)(?<=https)(?=:)|(?<=http)(?=:)|(?<=ftp)(?=:)|(?<=mailto)(?=:)|(?<=xmpp)(?=:)"
                       r"|(?<=www)(?=\.)|(?<=@)")
WORD_JOINER = "\u2060"
_PLAIN_WORD = re.compile(r"[\w.-]+")


def md(text: object) -> str:
    """``text`` (model-written or from the database) as literal Markdown for a short line: whitespace runs become one
    space and every ASCII punctuation character is backslash-escaped, which CommonMark renders as the character
    itself — no image, link, HTML, emphasis, list, heading, code, table, directive, emoji or formula. GFM's literal
    autolinks (``http://…``, ``www.…``, ``a@b.c``) are found after escapes are read, so an invisible word joiner
    (U+2060) after ``http``/``www``/``@`` keeps them text."""
    flat = _AUTOLINK.sub(WORD_JOINER, " ".join(str(text).split()))
    return _MD_PUNCTUATION.sub(r"\\\1", flat)


def code(text: object) -> str:
    """``text`` as inline code when it is one plain word (an alias, a finish reason), else :func:`md`."""
    value = str(text)
    return f"`{value}`" if _PLAIN_WORD.fullmatch(value) else md(value)


def _wrap(text: str | None, width: int = 60, limit: int = 600) -> str:
    text = (text or "").strip()
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return "<br>".join(escape(line) for line in textwrap.wrap(text, width)) or "<i>(no rationale)</i>"


def _layout(fig: go.Figure, *, height: int, title: str | None = None) -> go.Figure:
    fig.update_layout(
        height=height,
        margin={"l": 10, "r": 10, "t": 40 if title else 10, "b": 10},
        title=title,
        hoverlabel={"align": "left"},
    )
    return fig


# ---------------------------------------------------------------------------------------------------- matrix
def draft_marks(draft: dict[str, Any]) -> str:
    marks = []
    if draft.get("truncated"):
        marks.append(f"✂ −{draft.get('truncation_penalty') or 0:g}")
    if (draft.get("lateness_penalty") or 0) > 0:
        marks.append(f"late −{draft['lateness_penalty']:.2f}")
    return " ".join(marks)


def matrix_figure(votes: Sequence[dict[str, Any]], drafts: Sequence[dict[str, Any]]) -> go.Figure:
    """Voter × target heatmap of insight scores; columns are authors with their (revealed) aliases, penalised
    drafts are outlined in red, every cell's hover carries the rationale. A cell shows (and is coloured by) the
    integer score as written; its hover adds the G-Eval reading (``expected_score``) when the vote has one."""
    order = [d["author"] for d in drafts]
    targets = order + sorted({v["target"] for v in votes} - set(order))
    rank = {name: k for k, name in enumerate(order)}  # voters in the columns' order, then forfeiters by name
    voters = sorted({v["voter"] for v in votes} | set(order), key=lambda n: (n not in rank, rank.get(n, 0), n))
    by_author = {d["author"]: d for d in drafts}
    alias = {v["target"]: v["alias"] for v in votes} | {d["author"]: d["alias"] for d in drafts}
    labels = []
    for t in targets:
        d = by_author.get(t, {})
        mark = draft_marks(d)
        crown = "★ " if d.get("winner") else ""
        labels.append(f"{crown}<b>{escape(t)}</b><br>{escape(alias.get(t) or '')}" + (f"<br>{mark}" if mark else ""))
    cell = {(v["voter"], v["target"]): v for v in votes}
    z: list[list[float | None]] = []
    text: list[list[str]] = []
    hover: list[list[str]] = []
    for voter in voters:
        z_row: list[float | None] = []
        t_row: list[str] = []
        h_row: list[str] = []
        for t in targets:
            v = cell.get((voter, t))
            if v is None:
                z_row.append(None)
                t_row.append("—" if voter == t else "")
                own = " (own draft)" if voter == t else ""
                h_row.append(f"<b>{escape(voter)}</b> did not vote on {escape(t)}{own}")
                continue
            z_row.append(v["insight_score"])
            t_row.append(str(v["insight_score"]))
            pen = v.get("latency_penalty") or 0.0
            notes = []
            if pen:
                notes.append(f"penalty on this draft: −{pen:.2f}")
            if v.get("excerpted"):
                notes.append("judged from an excerpt")
            geval = v.get("expected_score")
            reading = f"insight <b>{v['insight_score']}</b>/10" + ("" if geval is None else f" · G-Eval {geval:.1f}")
            h_row.append(
                f"<b>{escape(voter)}</b> → <b>{escape(t)}</b> ({escape(v.get('alias') or '')})<br>"
                f"{reading}" + ("<br>" + "; ".join(notes) if notes else "")
                + f"<br><br>{_wrap(v.get('rationale'))}"
            )
        z.append(z_row)
        text.append(t_row)
        hover.append(h_row)
    fig = go.Figure(
        go.Heatmap(
            z=z, x=list(range(len(targets))), y=list(range(len(voters))), text=text, hovertext=hover,
            texttemplate="%{text}", hovertemplate="%{hovertext}<extra></extra>", zmin=1, zmax=10,
            colorscale=SCORE_SCALE, xgap=2, ygap=2, colorbar={"title": {"text": "insight"}, "thickness": 12},
        )
    )
    for j, t in enumerate(targets):
        if draft_marks(by_author.get(t, {})):
            fig.add_shape(type="rect", x0=j - 0.5, x1=j + 0.5, y0=-0.5, y1=len(voters) - 0.5,
                          line={"color": LOSER, "width": 3, "dash": "dot"})
    fig.update_xaxes(tickvals=list(range(len(targets))), ticktext=labels, side="top", title=None)
    fig.update_yaxes(tickvals=list(range(len(voters))), ticktext=[f"<b>{escape(v)}</b>" for v in voters],
                     autorange="reversed", title=None)
    return _layout(fig, height=140 + 52 * max(len(voters), 1))


def vote_graph_figure(votes: Sequence[dict[str, Any]], drafts: Sequence[dict[str, Any]]) -> go.Figure:
    """Who voted for whom: agents on a circle, an arrow per vote (thicker and bluer for a higher score)."""
    names = [d["author"] for d in drafts]
    names += sorted(({v["voter"] for v in votes} | {v["target"] for v in votes}) - set(names))
    n = max(len(names), 1)
    pos = {name: (math.cos(math.pi / 2 - 2 * math.pi * k / n), math.sin(math.pi / 2 - 2 * math.pi * k / n))
           for k, name in enumerate(names)}
    by_author = {d["author"]: d for d in drafts}
    fig = go.Figure()
    hx: list[float] = []
    hy: list[float] = []
    htext: list[str] = []
    hcolour: list[int] = []
    for v in votes:
        (x0, y0), (x1, y1) = pos[v["voter"]], pos[v["target"]]
        dx, dy = x1 - x0, y1 - y0
        length = math.hypot(dx, dy) or 1.0
        ox, oy = -dy / length * 0.035, dx / length * 0.035  # the two directions of a pair side by side
        sx, sy = x0 + dx * 0.1 + ox, y0 + dy * 0.1 + oy
        ex, ey = x0 + dx * 0.88 + ox, y0 + dy * 0.88 + oy
        score = v["insight_score"]
        frac = (score - 1) / 9
        colour = _scale_colour(frac)
        fig.add_annotation(x=ex, y=ey, ax=sx, ay=sy, xref="x", yref="y", axref="x", ayref="y", showarrow=True,
                           arrowhead=2, arrowsize=1, arrowwidth=0.6 + 3.2 * frac, arrowcolor=colour,
                           opacity=0.35 + 0.6 * frac, text="")
        hx.append(x0 + dx * 0.55 + ox)
        hy.append(y0 + dy * 0.55 + oy)
        hcolour.append(score)
        who = f"<b>{escape(v['voter'])}</b> → <b>{escape(v['target'])}</b>"
        htext.append(f"{who}: {score}/10<br>{_wrap(v.get('rationale'))}")
    fig.add_trace(go.Scatter(x=hx, y=hy, mode="markers", hovertext=htext, hovertemplate="%{hovertext}<extra></extra>",
                             marker={"size": 9, "color": hcolour, "colorscale": SCORE_SCALE, "cmin": 1, "cmax": 10,
                                     "opacity": 0.8}, showlegend=False, name="votes"))
    received: dict[str, list[int]] = defaultdict(list)
    for v in votes:
        received[v["target"]].append(v["insight_score"])
    sizes, colours, labels, hovers = [], [], [], []
    for name in names:
        d = by_author.get(name, {})
        got = received.get(name, [])
        mean = sum(got) / len(got) if got else 0.0
        sizes.append(22 + 4 * mean)
        colours.append(WINNER if d.get("winner") else LOSER if d.get("loser") else ALIVE)
        role = " — chapter" if d.get("winner") else " — eliminated" if d.get("loser") else ""
        labels.append(f"<b>{escape(name)}</b>{role}")
        hovers.append(f"<b>{escape(name)}</b> ({escape(d.get('alias') or '')})<br>mean insight received {mean:.2f}"
                      f" from {len(got)} vote(s)")
    fig.add_trace(go.Scatter(
        x=[pos[nm][0] for nm in names], y=[pos[nm][1] for nm in names], mode="markers+text", text=labels,
        textposition=["top center" if pos[nm][1] >= 0 else "bottom center" for nm in names],
        hovertext=hovers, hovertemplate="%{hovertext}<extra></extra>",
        marker={"size": sizes, "color": colours, "line": {"color": "white", "width": 2}}, showlegend=False,
        name="agents",
    ))
    fig.update_xaxes(visible=False, range=[-1.5, 1.5])
    fig.update_yaxes(visible=False, range=[-1.35, 1.35], scaleanchor="x")
    return _layout(fig, height=520)


def _scale_colour(frac: float) -> str:
    frac = min(1.0, max(0.0, frac))
    for (f0, c0), (f1, c1) in zip(SCORE_SCALE, SCORE_SCALE[1:], strict=False):
        if f0 <= frac <= f1:
            t = (frac - f0) / (f1 - f0) if f1 > f0 else 0.0
            a = [int(c0[i : i + 2], 16) for i in (1, 3, 5)]
            b = [int(c1[i : i + 2], 16) for i in (1, 3, 5)]
            r, g, bl = (round(x + (y - x) * t) for x, y in zip(a, b, strict=True))
            return f"rgb({r},{g},{bl})"
    return SCORE_SCALE[-1][1]


# ---------------------------------------------------------------------------------------------------- chopping block
@dataclass(frozen=True, slots=True)
class Standing:
    name: str
    rating: float
    gap: float
    """Points above the lowest living rating (the elimination line); 0 for the lowest."""
    margin: float
    """Points above the lowest OTHER living agent; at most the danger band means the agent can fall next epoch."""
    risk: str
    """``next out`` (lowest now), ``can fall`` (within the danger band of the lowest other agent, or the band is
    unknown) or ``safe`` next epoch."""


def danger_band(largest_move: float | None) -> float | None:
    """How far above every other living agent an agent may sit and still be the lowest after the next epoch: twice
    the largest one-epoch rating change seen in this book (``DeckReader.largest_move``) — one agent falling by that
    much while another rises by as much.

    Ratings are Plackett–Luce skills (openskill μ): unlike Elo's K, nothing bounds one epoch's move (it grows with σ,
    with the number of ballots and with how consistently they rank an agent), so the band is an estimate from the
    book's own history, not a guarantee: a move larger than any seen can still happen. It leans cautious as a book
    ages: moves shrink as σ settles, and the largest usually come early (every founding agent starts at σ = 250,
    newcomers enter at 125).

    ``None`` (unknown) while no epoch has moved a rating. Any number then would be a guess passed off as safety, so
    ``standings`` marks every agent but the lowest *can fall*; this hides nothing, since before the first epoch every
    founding agent sits at the initial rating and all margins are 0 anyway."""
    if largest_move is None or largest_move <= 0:
        return None
    return 2.0 * largest_move


def standings(roster: Sequence[dict[str, Any]], band: float | None) -> list[Standing]:
    """Living agents from the top (the one *next out* last, also among equal ratings), each with its gap to the
    elimination line and its risk for the next epoch.

    The next loser is the lowest-rated living agent after the next epoch: an agent can be last next time only if
    it is at most ``band`` (``danger_band``) above every other agent. With ``band`` ``None`` (no epoch has moved a
    rating yet) nobody is called safe."""
    ratings = [(r["name"], float(r["rating"])) for r in roster]
    if not ratings:
        return []
    floor = min(r for _, r in ratings)
    lowest_name = min(ratings, key=lambda nr: (nr[1], nr[0]))[0]
    out = []
    for name, rating in sorted(ratings, key=lambda nr: (-nr[1], nr[0] == lowest_name, nr[0])):  # next out last
        others = [r for n, r in ratings if n != name]
        margin = rating - min(others) if others else 0.0
        if name == lowest_name:
            risk = "next out"
        elif band is None or margin <= band:
            risk = "can fall"
        else:
            risk = "safe"
        out.append(Standing(name, rating, rating - floor, margin, risk))
    return out


def chopping_figure(rows: Sequence[Standing], band: float | None) -> go.Figure:
    """Horizontal bars of the living ratings, the elimination line and the danger band above it (``danger_band``;
    ``None``: unknown, said on the line)."""
    fig = go.Figure()
    if not rows:
        return _layout(fig, height=200)
    floor = min(s.rating for s in rows)
    top = max(s.rating for s in rows)
    ordered = list(reversed(rows))  # plotly draws the first category at the bottom: the lowest rating
    for risk in ("safe", "can fall", "next out"):
        part = [s for s in ordered if s.risk == risk]
        if not part:
            continue
        fig.add_trace(go.Bar(
            x=[s.rating for s in part], y=[escape(s.name) for s in part], orientation="h", name=risk,
            marker_color=RISK_COLOUR[risk],
            text=[f"{s.rating:.0f}  (+{s.gap:.0f})" if s.gap else f"{s.rating:.0f}  elimination line" for s in part],
            textposition="outside", cliponaxis=False,
            hovertemplate="<b>%{y}</b><br>rating %{x:.1f}<br>%{text}<extra>" + risk + "</extra>",
        ))
    if band is not None:
        fig.add_vrect(x0=floor, x1=floor + band, fillcolor=RISK_COLOUR["can fall"], opacity=0.12, line_width=0)
        note = f"can fall next epoch: ≤ {band:.1f} above the lowest (2 × the largest one-epoch move so far)"
    else:
        note = "danger band unknown before the first epoch"
    fig.add_vline(x=floor, line={"color": LOSER, "width": 2, "dash": "dash"})
    fig.add_annotation(x=floor, xref="x", y=1, yref="paper", xanchor="left", yanchor="bottom", showarrow=False,
                       text=note, font={"color": RISK_COLOUR["can fall"]})  # above the bars, where it stays legible
    lo = floor - max(40.0, (top - floor) * 0.15)
    hi = top + max(60.0, (top - floor) * 0.25)
    fig.update_xaxes(range=[lo, hi], title=RATING_AXIS)
    fig.update_yaxes(categoryorder="array", categoryarray=[escape(s.name) for s in ordered])
    fig.update_layout(barmode="overlay", legend={"orientation": "h", "y": -0.2})
    _layout(fig, height=140 + 42 * len(rows))
    fig.update_layout(margin={"t": 30})
    return fig


# ---------------------------------------------------------------------------------------------------- ratings
def ratings_figure(
    trajectories: Sequence[tuple[str, int, float, float]], agents: Sequence[dict[str, Any]]
) -> go.Figure:
    """The rating of every agent over the epochs: the living in colour (one trace each), the dead in grey (one trace for
    all of them), entries (●) and eliminations (✕) marked."""
    status = {a["name"]: a for a in agents}
    series: dict[str, tuple[list[int], list[float]]] = {}
    for name, epoch_no, before, after in trajectories:
        xs, ys = series.setdefault(name, ([], []))
        if not xs:
            xs.append(epoch_no - 1)
            ys.append(before)
        xs.append(epoch_no)
        ys.append(after)
    for a in agents:  # a newcomer that has not played yet: its entry point
        if a["name"] not in series and a["status"] == "alive":
            series[a["name"]] = ([a["born_epoch"]], [a["rating"]])
    fig = go.Figure()
    dead_x: list[int | None] = []
    dead_y: list[float | None] = []
    dead_t: list[str | None] = []
    for name, (xs, ys) in series.items():
        if status.get(name, {}).get("status") == "alive":
            continue
        dead_x += [*xs, None]
        dead_y += [*ys, None]
        dead_t += [escape(name)] * len(xs) + [None]
    if dead_x:
        fig.add_trace(go.Scatter(x=dead_x, y=dead_y, text=dead_t, mode="lines", name="eliminated agents",
                                 line={"color": DEAD, "width": 1}, opacity=0.8, connectgaps=False,
                                 hovertemplate="%{text}<br>epoch %{x}: %{y:.0f}<extra></extra>"))
    for name, (xs, ys) in series.items():
        if status.get(name, {}).get("status") != "alive":
            continue
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=escape(name), line={"width": 2.5},
                                 hovertemplate=f"{escape(name)}<br>epoch %{{x}}: %{{y:.0f}}<extra></extra>"))
    entries = [(xs[0], ys[0], escape(n)) for n, (xs, ys) in series.items()
               if status.get(n, {}).get("born_epoch", 0) > 0]
    if entries:
        fig.add_trace(go.Scatter(
            x=[e[0] for e in entries], y=[e[1] for e in entries], text=[e[2] for e in entries], mode="markers",
            name="entry",
            marker={"symbol": "circle", "size": 6, "color": ALIVE, "line": {"color": "white", "width": 1}},
            hovertemplate="%{text} enters after epoch %{x}<extra></extra>",
        ))
    deaths = []
    for n, (xs, ys) in series.items():
        died = status.get(n, {}).get("died_epoch")
        if died is not None:
            y = ys[xs.index(died)] if died in xs else ys[-1]
            deaths.append((died, y, escape(n)))
    if deaths:
        fig.add_trace(go.Scatter(
            x=[d[0] for d in deaths], y=[d[1] for d in deaths], text=[d[2] for d in deaths], mode="markers",
            name="eliminated", marker={"symbol": "x", "size": 7, "color": LOSER, "opacity": 0.8},
            hovertemplate="%{text} eliminated in epoch %{x} at %{y:.0f}<extra></extra>",
        ))
    latest = max((t[1] for t in trajectories), default=0)
    window = {"range": [latest - RATINGS_WINDOW, latest + 1]} if latest > 1.5 * RATINGS_WINDOW else {}
    fig.update_xaxes(title="epoch", rangeslider={"visible": latest > RATINGS_WINDOW}, **window)
    fig.update_yaxes(title=RATING_AXIS)
    fig.update_layout(hovermode="closest", legend={"orientation": "v"})
    return _layout(fig, height=520)


# ---------------------------------------------------------------------------------------------------- epoch
def epoch_scores_figure(drafts: Sequence[dict[str, Any]]) -> go.Figure:
    """Each draft's total: mean insight received, minus its truncation and lateness penalties."""
    names = [("★ " if d["winner"] else "") + escape(d["author"]) for d in drafts]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=names, y=[d["mean_insight"] or 0 for d in drafts], name="mean insight",
                         marker_color=ALIVE))
    fig.add_trace(go.Bar(x=names, y=[-(d["truncation_penalty"] or 0) for d in drafts], name="truncation",
                         marker_color=LOSER))
    fig.add_trace(go.Bar(x=names, y=[-(d["lateness_penalty"] or 0) for d in drafts], name="lateness",
                         marker_color=RISK_COLOUR["can fall"]))
    fig.add_trace(go.Scatter(x=names, y=[d["score"] for d in drafts], mode="markers+text", name="total",
                             text=[f"{d['score']:.2f}" if d["score"] is not None else "" for d in drafts],
                             textposition="top center", marker={"symbol": "diamond", "size": 12, "color": "black"}))
    fig.update_layout(barmode="relative", legend={"orientation": "h", "y": -0.25})
    fig.update_yaxes(title="points")
    return _layout(fig, height=360, title="Score of each draft")


def epoch_latency_figure(drafts: Sequence[dict[str, Any]]) -> go.Figure:
    """Tokens written against seconds taken; truncated drafts in red."""
    fig = go.Figure(go.Scatter(
        x=[d["latency_s"] for d in drafts], y=[d["completion_tokens"] for d in drafts],
        text=[escape(d["author"]) for d in drafts], mode="markers+text", textposition="top center",
        marker={"size": 14, "color": [LOSER if d["truncated"] else WINNER if d["winner"] else ALIVE for d in drafts]},
        hovertemplate="<b>%{text}</b><br>%{y} tokens in %{x:.2f} s<extra></extra>",
    ))
    fig.update_xaxes(title="latency (s)")
    fig.update_yaxes(title="completion tokens")
    return _layout(fig, height=360, title="Tokens and latency (red: truncated)")


# ---------------------------------------------------------------------------------------------------- lineage
@dataclass(frozen=True, slots=True)
class LineageNode:
    name: str
    seat: int
    start: int
    end: int
    alive: bool
    origin: str
    parents: tuple[str, ...]
    replaced: str | None


def lineage(agents: Sequence[dict[str, Any]], latest_epoch: int) -> list[LineageNode]:
    """Agents placed on seats: a replacement takes the seat of the agent it replaced, so each seat reads as a
    succession from left to right."""
    seat_of: dict[Any, int] = {}
    nodes = []
    seats = 0
    for a in sorted(agents, key=lambda a: (a["born_epoch"], a["replaced_agent_id"] is not None, a["name"])):
        seat = seat_of.get(a["replaced_agent_id"]) if a["replaced_agent_id"] is not None else None
        if seat is None:
            seat = seats
            seats += 1
        seat_of[a["agent_id"]] = seat
        end = a["died_epoch"] if a["died_epoch"] is not None else max(latest_epoch, a["born_epoch"]) + 0.6
        nodes.append(LineageNode(a["name"], seat, a["born_epoch"], end, a["status"] == "alive", a["origin"],
                                 tuple(a["parents"] or ()), a["replaced"]))
    return nodes


def lineage_figure(nodes: Sequence[LineageNode], latest_epoch: int) -> go.Figure:
    """Seats × epochs: each agent a bar from its entry to its elimination; dotted lines join a bred agent to its
    parents (when they played in this book)."""
    fig = go.Figure()
    by_name = {n.name: n for n in nodes}
    groups: dict[tuple[bool, str], list[LineageNode]] = defaultdict(list)
    for n in nodes:
        groups[(n.alive, n.origin)].append(n)
    for (alive, origin), part in sorted(groups.items()):
        xs: list[float | None] = []
        ys: list[float | None] = []
        for n in part:
            xs += [n.start + 0.08, n.end - 0.08, None]
            ys += [n.seat, n.seat, None]
        colour = ORIGIN_COLOUR.get(origin, ALIVE) if alive else DEAD
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line={"color": colour, "width": 14}, hoverinfo="skip",
                                 name=f"{'living' if alive else 'eliminated'} · {escape(origin)}",
                                 opacity=1 if alive else 0.7))
    px: list[float | None] = []
    py: list[float | None] = []
    for n in nodes:
        for parent in n.parents:
            p = by_name.get(parent)
            if p is not None:
                px += [min(max(n.start, p.start), p.end), n.start + 0.1, None]
                py += [p.seat, n.seat, None]
    if px:
        fig.add_trace(go.Scatter(x=px, y=py, mode="lines", name="bred from",
                                 line={"color": ORIGIN_COLOUR["bred"], "width": 1.5, "dash": "dot"}, hoverinfo="skip"))
    hover = []
    for n in nodes:
        life = f"entered after epoch {n.start}" if n.start else "founding roster"
        fate = "alive" if n.alive else f"eliminated in epoch {n.end:g}"
        parts = [f"<b>{escape(n.name)}</b> ({escape(n.origin)})", life, fate]
        if n.replaced:
            parts.append(f"replaced {escape(n.replaced)}")
        if n.parents:
            parts.append("bred from " + " × ".join(escape(p) for p in n.parents))
        hover.append("<br>".join(parts))
    fig.add_trace(go.Scatter(
        x=[(n.start + n.end) / 2 for n in nodes], y=[n.seat for n in nodes], mode="text",
        text=[escape(n.name) if n.end - n.start >= 3 else "" for n in nodes], textfont={"color": "white", "size": 11},
        hovertext=hover,
        hovertemplate="%{hovertext}<extra></extra>", showlegend=False, name="agents",
    ))
    seats = max((n.seat for n in nodes), default=0) + 1
    window = 40
    x0 = max(0.0, latest_epoch - window) if latest_epoch > window else 0.0
    fig.update_xaxes(title="epoch", range=[x0 - 0.5, latest_epoch + 1], rangeslider={"visible": latest_epoch > window})
    fig.update_yaxes(tickvals=list(range(seats)), ticktext=[f"seat {s + 1}" for s in range(seats)],
                     autorange="reversed", title=None, showgrid=False)
    fig.update_layout(legend={"orientation": "h", "y": 1.08})
    return _layout(fig, height=160 + 48 * seats)
