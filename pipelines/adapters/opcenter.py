"""Siemens Opcenter-style OData v4 extracts: paged JSON files in a batch folder, or a live endpoint over HTTP."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pandas as pd

from data_contracts.contract import Contract, SourceKind
from pipelines.adapters.errors import EntitySetNotFound, SourceError
from pipelines.adapters.records import (
    LandedPart,
    combine_parts,
    load_json_file,
    parse_json,
    records_to_landed,
)

NEXT_LINK = "@odata.nextLink"


def odata_pages(batch_dir: Path, entity_set: str) -> list[Path]:
    """The page files of an entity set in page order; [] when the batch does not carry the set.

    Pages are ``<EntitySet>-0001.json``, ``-0002.json``, ... numbered without gaps, or one ``<EntitySet>.json``.
    """
    numbered: dict[int, Path] = {}
    name = re.compile(rf"{re.escape(entity_set)}-(\d+)\.json")
    for path in batch_dir.glob(f"{entity_set}-*.json"):
        match = name.fullmatch(path.name)
        if match:
            numbered[int(match[1])] = path
    single = batch_dir / f"{entity_set}.json"
    if single.is_file():
        if numbered:
            raise SourceError(
                f"{batch_dir.name}/{single.name}", "both a single page and numbered pages of the entity set"
            )
        return [single]
    for expected, number in enumerate(sorted(numbered), start=1):
        if number != expected:
            raise SourceError(
                f"{batch_dir.name}/{entity_set}-{expected:04d}.json",
                f"page missing: pages must be numbered from 0001 without gaps, next found is {number:04d}",
            )
    return [numbered[n] for n in sorted(numbered)]


def read_odata_files(batch_dir: Path, entity_set: str) -> Iterator[dict[str, Any]]:
    """Every record of an entity set's page files, in order, checking the page chain as it goes."""
    pages = odata_pages(batch_dir, entity_set)
    if not pages:
        raise SourceError(f"{batch_dir.name}/{entity_set}-0001.json", "no page files for the entity set")
    rows_before = 0
    for index, path in enumerate(pages):
        location = f"{batch_dir.name}/{path.name}"
        body = load_json_file(path)
        records = page_records(body, location)
        rows_before += len(records)
        link = next_link(body, location)
        _check_chain(link, is_last=index == len(pages) - 1, rows_before=rows_before, location=location)
        yield from records


def page_records(body: Any, location: str) -> list[Any]:
    """The ``value`` array of one OData page."""
    if not isinstance(body, dict):
        raise SourceError(location, f"an OData page is a JSON object, got {type(body).__name__}")
    if "value" not in body:
        raise SourceError(location, "OData page without a 'value' array", field="value")
    records = body["value"]
    if not isinstance(records, list):
        raise SourceError(location, f"'value' must be an array, got {type(records).__name__}", field="value")
    return records


def next_link(body: dict[str, Any], location: str) -> str | None:
    """The page's @odata.nextLink, if any."""
    link = body.get(NEXT_LINK)
    if link is not None and not isinstance(link, str):
        raise SourceError(location, "nextLink must be a string", field=NEXT_LINK)
    return link


def _check_chain(link: str | None, *, is_last: bool, rows_before: int, location: str) -> None:
    if is_last and link is not None:
        raise SourceError(location, f"last page file links to a next page ({link}) that is not in the batch")
    if not is_last and link is None:
        raise SourceError(location, "page has no @odata.nextLink but a later page file exists")
    if link is None:
        return
    # The skiptoken is opaque in OData; when it is a row count (as our extracts write it) it must add up.
    token = parse_qs(urlsplit(link).query).get("$skiptoken", [""])[0]
    if token.isdigit() and int(token) != rows_before:
        raise SourceError(
            location, f"$skiptoken={token} but {rows_before} rows come before the next page", field=NEXT_LINK
        )


class ODataClient:
    """Reads entity sets from an OData v4 endpoint, following server-driven paging (@odata.nextLink).

    The page size is asked for with ``Prefer: odata.maxpagesize`` only: ``$top`` would cap the whole result in
    OData, not the page, and silently truncate a large entity set.
    """

    def __init__(
        self, base_url: str, *, client: httpx.Client | None = None, page_size: int, timeout_s: float
    ) -> None:
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, got {page_size}")
        self.base_url = base_url.rstrip("/")
        self.page_size = page_size
        self.timeout_s = timeout_s
        self._owns_client = client is None
        self._client = client if client is not None else httpx.Client(timeout=timeout_s)

    def close(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> ODataClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def entity_url(self, entity_set: str) -> str:
        """The URL of the first page of an entity set."""
        return f"{self.base_url}/{entity_set}"

    def iter_entity(self, entity_set: str, *, missing_ok: bool = False) -> Iterator[dict[str, Any]]:
        """Every record of an entity set, page after page.

        When the endpoint answers 404 to the first request it lacks the set: EntitySetNotFound, or no records
        at all with ``missing_ok``. A 404 on a later page is a broken chain and always raises.
        """
        try:
            yield from self._iter_pages(entity_set)
        except EntitySetNotFound:
            if not missing_ok:
                raise

    def _iter_pages(self, entity_set: str) -> Iterator[dict[str, Any]]:
        url: str | None = self.entity_url(entity_set)
        followed: set[str] = set()
        while url is not None:
            if url in followed:
                raise SourceError(url, "nextLink loop: this page was already read", field=NEXT_LINK)
            is_first = not followed
            followed.add(url)
            body = self._get_page(url, is_first=is_first)
            yield from page_records(body, url)
            link = next_link(body, url)
            url = None if link is None else str(httpx.URL(f"{self.base_url}/").join(link))

    def _get_page(self, url: str, *, is_first: bool) -> Any:
        headers = {"Accept": "application/json", "Prefer": f"odata.maxpagesize={self.page_size}"}
        try:
            response = self._client.get(url, headers=headers, timeout=self.timeout_s)
        except httpx.TimeoutException as err:
            raise SourceError(url, f"timed out after {self.timeout_s}s ({type(err).__name__})") from None
        except httpx.HTTPError as err:
            raise SourceError(url, f"request failed: {type(err).__name__}: {err}") from None
        if response.status_code == 404 and is_first:
            raise EntitySetNotFound(url, "HTTP 404: the endpoint has no such entity set", status=404)
        if not response.is_success:
            raise SourceError(
                url, f"HTTP {response.status_code} {response.reason_phrase}", status=response.status_code
            )
        try:
            return parse_json(response.content)
        except ValueError as err:
            raise SourceError(url, f"invalid JSON: {err}") from None


def iter_opcenter_parts(
    source: Path | ODataClient, contracts: Mapping[str, Contract]
) -> Iterator[LandedPart]:
    """One landed part per opcenter mapping the source carries (file batch or endpoint)."""
    for contract in contracts.values():
        for name, mapping in contract.sources.items():
            if mapping.kind != SourceKind.OPCENTER:
                continue
            if isinstance(source, ODataClient):
                url = source.entity_url(mapping.entity)
                try:
                    frame = records_to_landed(
                        source.iter_entity(mapping.entity), contract, mapping, f"{name}:{url}"
                    )
                except EntitySetNotFound:
                    continue  # the endpoint does not serve this set: the table is absent, not broken
                yield LandedPart(contract.name, name, mapping.entity, (url,), frame)
                continue
            pages = odata_pages(source, mapping.entity)
            if not pages:
                continue
            label = f"{name}:{source.name}/{mapping.entity}"
            frame = records_to_landed(read_odata_files(source, mapping.entity), contract, mapping, label)
            yield LandedPart(contract.name, name, mapping.entity, tuple(p.name for p in pages), frame)


def read_opcenter(source: Path | ODataClient, contracts: Mapping[str, Contract]) -> dict[str, pd.DataFrame]:
    """Landed frames by table for every opcenter-mapped entity set the batch folder or endpoint has."""
    return combine_parts(iter_opcenter_parts(source, contracts))


def write_odata_pages(
    folder: Path, entity_set: str, records: list[dict[str, Any]], page_size: int
) -> list[str]:
    """Write records as Opcenter page files ``<EntitySet>-0001.json``, … linked by ``@odata.nextLink``.

    The one writer of the on-disk OData shape that :func:`read_odata_files` reads (simulated extracts,
    pulls from an endpoint, test fixtures). Returns the file names in page order.
    """
    folder.mkdir(parents=True, exist_ok=True)
    pages = max(1, -(-len(records) // page_size))
    names = []
    for index in range(pages):
        name = f"{entity_set}-{index + 1:04d}.json"
        body: dict[str, Any] = {
            "@odata.context": f"$metadata#{entity_set}",
            "value": records[index * page_size : (index + 1) * page_size],
        }
        if index < pages - 1:
            body["@odata.nextLink"] = f"{entity_set}?$skiptoken={(index + 1) * page_size}"
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":")) + "\n"
        (folder / name).write_text(text, encoding="utf-8")
        names.append(name)
    return names
