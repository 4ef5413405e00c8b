"""Opening a store: where it is (argument, ``$CAS_STORE``, ``store.toml``), its backend,
read-only mode, and the local cache in front of a remote store."""

from __future__ import annotations

from casstore.backends import open_backend
from casstore.config import Config, load_config, normalize_url, parse_size, resolve_location
from casstore.store.marker import check_marker, initialize
from casstore.store.objects import Store


def _attach_cache(store: Store) -> None:
    from casstore.backends.local import LocalBackend
    from casstore.store.cache import ObjectCache, default_cache_dir

    section = store.config.file.cache
    if isinstance(store.backend, LocalBackend) or not section.enabled:
        return
    folder = (
        normalize_url(section.dir, store.config.base_dir) if section.dir else default_cache_dir()
    )
    cache_store = Store(open_backend(str(folder)), config=store.config)
    cache_store.initialize()
    store.cache = ObjectCache(cache_store, parse_size(section.max_size, "[cache] max_size"))


def _build(url: str | None, config: Config | None, read_only: bool = False) -> tuple[Store, bool]:
    config = config if config is not None else load_config()
    location = resolve_location(url, config)
    backend = open_backend(
        location.url,
        storage_options=config.storage_options(location.url),
        concurrency=config.file.s3.concurrency,
    )
    section = config.file.store
    if read_only or section.read_only:
        from casstore.backends.readonly import ReadOnlyBackend

        backend = ReadOnlyBackend(backend)
    store = Store(
        backend,
        compression_level=section.compression_level,
        compression_threads=section.compression_threads,
        config=config,
    )
    return store, location.embedded


def open_store(
    url: str | None = None,
    *,
    config: Config | None = None,
    cache: bool = True,
    read_only: bool = False,
) -> Store:
    """Open the store at ``url``, else ``$CAS_STORE``, else the one ``store.toml`` names.

    ``store.toml`` is looked for in the current folder and its parents; with
    no ``[store] url`` it names the embedded store ``.cas/`` beside it, which
    is created on first use. Any other location must already be a store
    (:func:`init_store`, ``cas init``): otherwise :class:`NotAStore`.

    A store that is not on a local disk reads through a local cache (``[cache]``
    in store.toml) unless ``cache`` is false. A store opened ``read_only`` (or
    with ``[store] read_only``) refuses every write with :class:`ReadOnlyStore`.
    """
    store, embedded = _build(url, config, read_only)
    if embedded and not store.read_only:
        initialize(store.backend)
    store.format_version = check_marker(store.backend)
    if cache:
        _attach_cache(store)
    return store


def init_store(
    url: str | None = None, *, config: Config | None = None, create_bucket: bool = False
) -> tuple[Store, bool]:
    """Create the store (chosen as :func:`open_store` does) unless it exists; with
    ``create_bucket``, its S3 bucket too.

    Returns the store and whether it was created.
    """
    store, _embedded = _build(url, config)
    if create_bucket:
        store.backend.create_container()
    created = initialize(store.backend)
    store.format_version = check_marker(store.backend)
    return store, created
