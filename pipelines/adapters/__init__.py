"""MES source adapters: Opcenter OData, Plex REST and CSV/Parquet drops -> landed frames of the contracts."""

from pipelines.adapters.batch import BatchRef, Manifest, list_batches, read_batch, read_manifest
from pipelines.adapters.errors import EntitySetNotFound, SourceError
from pipelines.adapters.files import read_file_drop
from pipelines.adapters.opcenter import ODataClient, read_odata_files, read_opcenter
from pipelines.adapters.plex import read_plex
from pipelines.adapters.records import records_to_landed

__all__ = [
    "BatchRef",
    "EntitySetNotFound",
    "Manifest",
    "ODataClient",
    "SourceError",
    "list_batches",
    "read_batch",
    "read_file_drop",
    "read_manifest",
    "read_odata_files",
    "read_opcenter",
    "read_plex",
    "records_to_landed",
]
