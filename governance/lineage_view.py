"""The lineage chain of a model version as a tree a reviewer reads top-down: extracts -> version."""

from __future__ import annotations

from rich.tree import Tree
from sqlalchemy import select

from governance.registry import Registry
from mesops import database
from mesops.settings import Settings
from mesops.tables import AttestationRecord, IngestBatch, TableLoad


def lineage_chain(settings: Settings, registry: Registry, name: str, version: str) -> Tree:
    """MES extract batches -> contract results per table -> anonymization attestations -> run -> version."""
    lineage = registry.lineage(name, version)
    info = registry.version(name, version)
    root = Tree(
        f"[bold]{name} version {version}[/]  (MLflow run {info.run_id}, aliases: "
        f"{', '.join(info.aliases) or '-'})"
    )
    root.add(
        f"code {lineage.code_version}; Dagster run {lineage.dagster_run_id}; assets {', '.join(lineage.asset_keys)}"
    )
    root.add(f"training window {lineage.training_window}")
    root.add(
        f"baseline: {lineage.baseline.get('baseline_name')} — {lineage.baseline.get('metric')} "
        f"{lineage.baseline.get('model_value')} vs {lineage.baseline.get('baseline_value')} "
        f"(ratio {lineage.baseline.get('ratio')}, beats: {lineage.baseline.get('beats_baseline')})"
    )
    data = root.add(
        f"training data (contracts {', '.join(lineage.contracts)}; anonymization policy "
        f"{lineage.anonymization_policy})"
    )
    with database.session_scope(settings.resolved_database_url) as session:
        for table, fingerprint in sorted(lineage.datasets.items()):
            node = data.add(f"{table}: {fingerprint.rows} rows, sha256 {fingerprint.sha256[:16]}…")
            for batch_id in fingerprint.batches:
                batch = session.get(IngestBatch, batch_id)
                extract = (
                    f"{batch.source_kind} extract {batch.path} (manifest {batch.manifest_sha256[:12]}…)"
                    if batch
                    else "?"
                )
                load = session.scalars(
                    select(TableLoad)
                    .where(TableLoad.batch_id == batch_id, TableLoad.table_name == table)
                    .order_by(TableLoad.created_at.desc())
                ).first()
                batch_node = node.add(f"batch {batch_id}: {extract}")
                if load is not None:
                    batch_node.add(
                        f"contract {load.contract_ref}: landed {load.landed}, valid {load.valid}, "
                        f"quarantined {load.quarantined} {load.reasons or ''}"
                    )
                    attestation = (
                        session.get(AttestationRecord, load.attestation_id) if load.attestation_id else None
                    )
                    if attestation is not None:
                        batch_node.add(
                            f"anonymization attestation {attestation.attestation_id[:16]}… (policy "
                            f"{attestation.policy_version}, content {attestation.content_sha256[:12]}…)"
                        )
    return root


def _figure(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)
