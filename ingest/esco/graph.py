"""The graph around the skills: occupation-skill relations, the broader hierarchy (with its cycles), and
the labels of occupations and skill groups."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

from ingest.errors import EscoFormatError
from ingest.esco.files import Entry
from ingest.esco.tables import Cleaner, Table, uri_cell

__all__ = ["Relations", "read_relations", "Broader", "read_broader", "ancestors", "labels_of"]

RELATION_TYPES = ("essential", "optional")

@dataclass
class Relations:
    """occupationSkillRelations rows: (line, occupation URI, relation type, skill URI)."""

    file: str
    rows: list[tuple[int, str, str, str]]


def read_relations(entry: Entry) -> Relations:
    """The rows of an occupationSkillRelations file; a relation type other than essential/optional is refused."""
    table = Table(entry, ("occupationUri", "relationType", "skillUri"))
    i_occ, i_rel, i_skill = (table.cols[c] for c in ("occupationUri", "relationType", "skillUri"))
    out: list[tuple[int, str, str, str]] = []
    for line, row in table.rows():
        rel = row[i_rel].strip().lower()
        if rel not in RELATION_TYPES:
            raise EscoFormatError(
                f"relation type {row[i_rel]!r} is neither of {', '.join(RELATION_TYPES)}",
                file=table.file, line=line, column="relationType",
            )
        out.append((line, uri_cell(row[i_occ]), rel, uri_cell(row[i_skill])))
    return Relations(table.file, out)


@dataclass
class Broader:
    """The broader hierarchy of the skill pillar."""

    file: str
    parents: dict[str, list[str]]  # concept -> direct broader concepts, file order, unique
    typed_groups: set[str]  # URIs that the file types as SkillGroup
    rows: int
    cycles: list[tuple[str, str]]  # back edges (child, parent)


def read_broader(entry: Entry) -> Broader:
    """A broaderRelationsSkillPillar file as a parent map, with the edges that close cycles."""
    table = Table(entry, ("conceptUri", "broaderUri"), ("conceptType", "broaderType"))
    i_c, i_b = table.cols["conceptUri"], table.cols["broaderUri"]
    i_ct, i_bt = table.cols.get("conceptType"), table.cols.get("broaderType")
    parents: dict[str, list[str]] = defaultdict(list)
    groups: set[str] = set()
    n = 0
    for _line, row in table.rows():
        n += 1
        child, parent = uri_cell(row[i_c]), uri_cell(row[i_b])
        if not child or not parent:
            continue
        if i_ct is not None and row[i_ct].strip() == "SkillGroup":
            groups.add(child)
        if i_bt is not None and row[i_bt].strip() == "SkillGroup":
            groups.add(parent)
        ps = parents[child]
        if parent not in ps:
            ps.append(parent)
    return Broader(table.file, dict(parents), groups, n, _back_edges(parents))


def _back_edges(parents: dict[str, list[str]]) -> list[tuple[str, str]]:
    """Edges that close a cycle (iterative three-colour DFS)."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    back: list[tuple[str, str]] = []
    for root in parents:
        if root in state:
            continue
        state[root] = 1
        stack: list[tuple[str, Iterator[str]]] = [(root, iter(parents.get(root, ())))]
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
                continue
            s = state.get(nxt)
            if s == 1:
                back.append((node, nxt))
            elif s is None:
                state[nxt] = 1
                stack.append((nxt, iter(parents.get(nxt, ()))))
    return back


def ancestors(uri: str, parents: dict[str, list[str]]) -> set[str]:
    """Every concept above ``uri`` (cycles cannot loop it)."""
    seen: set[str] = set()
    todo = list(parents.get(uri, ()))
    while todo:
        u = todo.pop()
        if u in seen or u == uri:
            continue
        seen.add(u)
        todo.extend(parents.get(u, ()))
    return seen


def labels_of(entry: Entry, clean: Cleaner, statuses: frozenset[str] | None = None,
               ) -> tuple[dict[str, str], int, int, set[str]]:
    """URI -> preferred label of an occupations/skillGroups file; (labels, rows, skipped, skipped URIs)."""
    table = Table(entry, ("conceptUri", "preferredLabel"), ("status",))
    i_uri, i_label, i_status = table.cols["conceptUri"], table.cols["preferredLabel"], table.cols.get("status")
    labels: dict[str, str] = {}
    skipped: set[str] = set()
    n = 0
    for _line, row in table.rows():
        uri = uri_cell(row[i_uri])
        if not uri:
            continue
        n += 1
        if statuses is not None and i_status is not None and row[i_status].strip() not in statuses:
            skipped.add(uri)
            continue
        labels.setdefault(uri, clean(row[i_label]))
    return labels, n, len(skipped), skipped
