"""``nativebuild cache``: look at, check, trim and share the wheel cache.

Results go to stdout, progress and warnings to stderr; the shared plumbing (reporter, error
mapping, settings cascade) comes from :mod:`nativebuild.cli.common`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from nativebuild.cache.local import LocalCache, default_cache_dir
from nativebuild.cache.maintenance import (
    choose_prune,
    evict,
    hit_rates,
    local_entries,
    parse_age,
    parse_size,
    read_stats,
    verify_local,
    verify_remote,
)
from nativebuild.cache.tiered import LOCAL_ONLY_KINDS, STATS_DIR, USED_DIR, TieredCache, trim_stats
from nativebuild.cli.common import handle_errors, settings_from_flags
from nativebuild.cli.console import ConsoleReporter, stderr_console
from nativebuild.cli.options import CacheDirOpt, JsonOpt, ProjectOpt, RemoteOpt
from nativebuild.errors import CacheError, ConfigError
from nativebuild.pipeline.records import build_records, orphaned
from nativebuild.redact import has_credentials

if TYPE_CHECKING:
    from nativebuild.config.settings import Settings
    from nativebuild.reporting import Reporter

cache_app = typer.Typer(
    name="cache",
    help="The wheel cache: list, statistics, prune, verify, and sync with the remote (--cache).",
    no_args_is_help=True,
)


def _human(size: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def _when(seconds: float) -> str:
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)
    return moment.isoformat(timespec="seconds")


@contextlib.contextmanager
def _session(
    cache_dir: Path | None, remote: str | None, project: Path | None, *, quiet: bool = False
) -> Iterator[tuple[Settings, Path, Reporter]]:
    console = stderr_console()
    env = dict(os.environ)
    with handle_errors(console):
        settings = settings_from_flags({"cache-dir": cache_dir, "cache": remote}, project, env)
        root = settings.cache_dir or default_cache_dir(env)
        yield settings, root, ConsoleReporter(console, verbose=False, quiet=quiet)


def _tiered(
    settings: Settings, root: Path, reporter: Reporter, *, need_remote: bool
) -> TieredCache:
    remote = None
    if settings.cache:
        from nativebuild.cache.s3 import open_remote

        remote = open_remote(settings.cache, endpoint_url=settings.cache_endpoint_url)
    elif need_remote:
        msg = "No remote cache is configured."
        raise ConfigError(msg, hint="Pass --cache s3://bucket/prefix or set NATIVEBUILD_CACHE.")
    local = LocalCache(root, reporter=reporter)
    cache = TieredCache(
        local, reporter=reporter, remote=remote, readonly=settings.cache_readonly, record=False
    )
    cache.ensure()
    return cache


def _emit(document: Any) -> None:
    typer.echo(json.dumps(document, indent=2, sort_keys=True, default=str))


@cache_app.command("path")
def path(cache_dir: CacheDirOpt = None, project: ProjectOpt = None) -> None:
    """Print the local cache directory."""
    with _session(cache_dir, None, project) as (_, root, _):
        typer.echo(str(root))


@cache_app.command("ls")
def ls(
    cache_dir: CacheDirOpt = None,
    remote: RemoteOpt = None,
    from_remote: Annotated[bool, typer.Option("--remote", help="List the remote cache.")] = False,
    project: ProjectOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """List the entries, most recently used first (or the remote's, newest first)."""
    with _session(cache_dir, remote, project) as (settings, root, reporter):
        if from_remote:
            cache = _tiered(settings, root, reporter, need_remote=True)
            assert cache.remote is not None  # noqa: S101 - need_remote
            rows = [
                (e.kind, e.key, e.filename, e.size, e.modified.isoformat(timespec="seconds"))
                for e in sorted(cache.remote.entries(), key=lambda e: e.modified, reverse=True)
            ]
        else:
            local = sorted(local_entries(root), key=lambda e: -e.last_used)
            rows = [(e.kind, e.key, e.name, e.size, _when(e.last_used)) for e in local]
    if json_output:
        columns = ("kind", "key", "name", "size", "time")
        _emit([dict(zip(columns, row, strict=True)) for row in rows])
        return
    table = Table(title=f"{len(rows)} entries")
    for column in ("kind", "name", "size", "last used" if not from_remote else "uploaded"):
        table.add_column(column)
    for kind, _, name, size, when in rows:
        table.add_row(kind, name, _human(size), when)
    Console(width=200, highlight=False).print(table)


@cache_app.command("stats")
def stats(
    cache_dir: CacheDirOpt = None,
    project: ProjectOpt = None,
    last: Annotated[int, typer.Option(help="How many recent builds to count.")] = 20,
    json_output: JsonOpt = False,
) -> None:
    """Entries and size by kind, and the hit rate of the last builds."""
    with _session(cache_dir, None, project) as (_, root, _):
        entries = list(local_entries(root))
        events = read_stats(root, last)
    kinds: dict[str, dict[str, int]] = {}
    for entry in entries:
        counts = kinds.setdefault(entry.kind, {"entries": 0, "size": 0})
        counts["entries"] += 1
        counts["size"] += entry.size
    rates = hit_rates(events)
    document: dict[str, Any] = {"path": str(root), "kinds": kinds}
    document["builds"] = len(events)
    document["lookups"] = {
        kind: {**dataclasses.asdict(r), "hit_rate": r.rate} for kind, r in rates.items()
    }
    document["uploads"] = sum(int(e.get("uploads", 0)) for e in events)
    document["rejected"] = sum(int(e.get("rejected", 0)) for e in events)
    if json_output:
        _emit(document)
        return
    typer.echo(f"cache: {root}")
    for kind, counts in sorted(kinds.items()):
        typer.echo(f"  {kind}: {counts['entries']} entries, {_human(counts['size'])}")
    typer.echo(f"last {len(events)} builds:")
    for kind, r in sorted(rates.items()):
        rate = "n/a" if r.rate is None else f"{r.rate:.0%}"
        typer.echo(f"  {kind}: hit rate {rate} (local {r.local}, remote {r.remote}, miss {r.miss})")
    typer.echo(f"  uploaded {document['uploads']}, rejected {document['rejected']}")


@cache_app.command("prune")
def prune(
    max_size: Annotated[
        str | None, typer.Option(help="Evict least recently used entries past this size (5G).")
    ] = None,
    older_than: Annotated[
        str | None, typer.Option(help="Evict entries unused for this long (30d, 12h).")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list them.")] = False,
    cache_dir: CacheDirOpt = None,
    project: ProjectOpt = None,
) -> None:
    """Evict least recently used entries from the local cache (the remote is left alone), and
    the up-to-date records of output folders that are gone."""
    with _session(cache_dir, None, project) as (_, root, _):
        if max_size is None and older_than is None:
            msg = "Nothing to prune by: pass --max-size, --older-than, or both."
            raise ConfigError(msg, hint="For example: nativebuild cache prune --max-size 5G.")
        limit = parse_size(max_size) if max_size is not None else None
        age = parse_age(older_than) if older_than is not None else None
        entries = [*local_entries(root), *build_records(root)]
        chosen = choose_prune(entries, now=time.time(), max_size=limit, older_than=age)
        chosen += orphaned(e for e in entries if e not in chosen)  # can never answer again
        if not dry_run:
            for entry in chosen:
                evict(root, entry)
            trim_stats(root / STATS_DIR)
            alive = {(e.kind, e.key) for e in entries} - {(e.kind, e.key) for e in chosen}
            for marker in (root / USED_DIR).glob("*/*"):  # of entries evicted as corrupt
                if (marker.parent.name, marker.name) not in alive:
                    marker.unlink(missing_ok=True)
    freed = sum(entry.size for entry in chosen)
    for entry in chosen:
        typer.echo(f"{'would evict' if dry_run else 'evicted'} {entry.kind} {entry.name}")
    kept = sum(entry.size for entry in entries) - freed
    typer.echo(f"{len(chosen)} entries, {_human(freed)} freed; {_human(kept)} kept")


@cache_app.command("verify")
def verify(
    cache_dir: CacheDirOpt = None,
    remote: RemoteOpt = None,
    from_remote: Annotated[bool, typer.Option("--remote", help="Verify the remote's.")] = False,
    project: ProjectOpt = None,
) -> None:
    """Re-hash every entry; bad ones are evicted (exit 9) and refetched when needed."""
    with _session(cache_dir, remote, project) as (settings, root, reporter):
        cache = _tiered(settings, root, reporter, need_remote=from_remote)
        checked, bad = verify_remote(cache) if from_remote else verify_local(cache.local)
        typer.echo(f"{checked - bad} entries verified, {bad} bad (evicted)")
        if bad:
            msg = f"{bad} cache entries failed verification and were evicted."
            raise CacheError(msg, hint="They are downloaded or rebuilt when next needed.")


@cache_app.command("push")
def push(
    cache_dir: CacheDirOpt = None, remote: RemoteOpt = None, project: ProjectOpt = None
) -> None:
    """Upload every verified local entry the remote lacks."""
    with _session(cache_dir, remote, project) as (settings, root, reporter):
        if settings.cache_readonly:
            msg = "cache-readonly is set: not pushing to the remote cache."
            raise ConfigError(msg, hint="Unset NATIVEBUILD_CACHE_READONLY to push.")
        cache = _tiered(settings, root, reporter, need_remote=True)
        remote_cache, local = cache.remote, cache.local
        assert remote_cache is not None  # noqa: S101
        sent = 0
        for entry in local_entries(local.root):
            if entry.kind == "file" and (hit := local.get_file(entry.key, entry.name)):
                sent += remote_cache.push_file(hit.path, sha256=entry.key, filename=entry.name)
            elif entry.kind == "built" and (built := local.get_built(entry.key)):
                sent += remote_cache.push_built(entry.key, built.wheel.path, built.manifest)
            elif entry.kind == "json" and entry.name not in LOCAL_ONLY_KINDS:
                key = entry.key.rsplit("-", 1)[1]
                document = local.get_json(entry.name, key)
                if document is not None and not has_credentials(document):
                    sent += remote_cache.push_json(entry.name, key, document)
    typer.echo(f"pushed {sent} entries to {remote_cache.url}")


@cache_app.command("pull")
def pull(
    cache_dir: CacheDirOpt = None, remote: RemoteOpt = None, project: ProjectOpt = None
) -> None:
    """Download (and verify) every remote entry the local cache lacks."""
    with _session(cache_dir, remote, project) as (settings, root, reporter):
        cache = _tiered(settings, root, reporter, need_remote=True)
        assert cache.remote is not None  # noqa: S101
        url = cache.remote.url
        have = {(e.kind, e.key) for e in local_entries(cache.root)}
        got = 0
        for entry in list(cache.remote.entries()):
            if entry.kind == "file" and ("file", entry.key) not in have:
                got += cache.get_file(entry.key, entry.filename) is not None
            elif entry.kind == "built" and ("built", entry.key) not in have:
                got += cache.get_built(entry.key) is not None
            elif entry.kind == "json":
                kind, key = entry.key.split("/", 1)
                if ("json", f"{kind}-{key}") not in have and kind not in LOCAL_ONLY_KINDS:
                    got += cache.get_json(kind, key) is not None
    typer.echo(f"pulled {got} entries from {url}")
