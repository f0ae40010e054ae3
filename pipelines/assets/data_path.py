"""Assets of the data path, generated per contract: landing -> anonymized -> curated, with their checks."""

import dagster as dg
import pandas as pd

from data_contracts.anonymization import verify_attestation
from data_contracts.contract import Contract
from data_contracts.landed import issues_from_json
from pipelines import stages
from pipelines.partitions import LANDING_BATCHES
from pipelines.resources import LandingFolderSource, PlatformResource


def landing_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["landing", table])


def anonymized_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["anonymized", table])


def curated_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["curated", table])


def build_landing_asset(contract: Contract) -> dg.AssetsDefinition:
    """The table as received from its MES source, text only (landing zone)."""

    @dg.asset(
        key=landing_key(contract.name),
        partitions_def=LANDING_BATCHES,
        group_name="landing",
        description=f"{contract.name} as received from the MES extract (text, may hold personal data).",
        kinds={"parquet"},
    )
    def _landing(
        context: dg.AssetExecutionContext, platform: PlatformResource, landing: LandingFolderSource
    ) -> dg.MaterializeResult:
        platform.ensure_database()
        batch = landing.batch(context.partition_key)
        stages.register_batch(platform.settings(), batch)
        summary = stages.land(platform.store(), contract, batch)
        return dg.MaterializeResult(
            metadata={
                "rows": summary.rows,
                "rows_with_source_issues": summary.rows_with_issues,
                "sources": ", ".join(summary.sources) or "(not in this batch)",
                "source_kind": str(batch.kind),
                "contract": contract.ref,
            }
        )

    return _landing


def build_anonymized_asset(contract: Contract) -> dg.AssetsDefinition:
    """Pseudonymized identifiers and redacted free text, with an attestation."""

    @dg.asset(
        key=anonymized_key(contract.name),
        deps=[landing_key(contract.name), landing_key(stages.ROSTER_TABLE)],
        partitions_def=LANDING_BATCHES,
        group_name="anonymized",
        description=f"{contract.name} with keyed pseudonyms and redacted free text, attested.",
        kinds={"parquet"},
    )
    def _anonymized(context: dg.AssetExecutionContext, platform: PlatformResource) -> dg.MaterializeResult:
        platform.ensure_database()
        attestation = stages.anonymize(platform.store(), platform.settings(), contract, context.partition_key)
        return dg.MaterializeResult(
            metadata={
                "rows": attestation.rows,
                "attestation_id": attestation.attestation_id,
                "policy_version": attestation.policy_version,
                "entities_replaced": sum(sum(c.replaced.values()) for c in attestation.columns),
            }
        )

    @dg.asset_check(asset=_anonymized, name="attested", blocking=True)
    def _attested(context: dg.AssetCheckExecutionContext, platform: PlatformResource) -> dg.AssetCheckResult:
        """The anonymized table has an attestation whose content hash matches it; else nothing is curated."""
        store = platform.store()
        batch_id = _check_partition(context)
        try:
            attestation = stages.load_attestation(store, contract.name, batch_id)
            verify_attestation(store.read(store.anonymized_path(contract.name, batch_id)), attestation)
        except (stages.StageError, ValueError) as err:
            return dg.AssetCheckResult(passed=False, metadata={"error": str(err)})
        return dg.AssetCheckResult(passed=True, metadata={"attestation_id": attestation.attestation_id})

    return [_anonymized, _attested]


def build_curated_asset(contract: Contract) -> list:
    """Contract-valid typed rows (curated) and rule-breaking rows (quarantine), with generated checks."""
    references = sorted({c.references.split(".")[0] for c in contract.columns if c.references})

    @dg.asset(
        key=curated_key(contract.name),
        deps=[anonymized_key(contract.name), *[anonymized_key(t) for t in references]],
        partitions_def=LANDING_BATCHES,
        group_name="curated",
        description=f"{contract.name} rows that meet contract {contract.ref}; the rest go to quarantine.",
        kinds={"parquet"},
    )
    def _curated(context: dg.AssetExecutionContext, platform: PlatformResource) -> dg.MaterializeResult:
        platform.ensure_database()
        result = stages.validate_table(
            platform.store(), platform.settings(), contract, context.partition_key, context.run_id
        )
        summary = result.summary()
        return dg.MaterializeResult(
            metadata={
                "contract": contract.ref,
                "landed": result.landed,
                "valid": result.valid_count,
                "quarantined": result.quarantined_count,
                "quarantined_by_rule": dg.MetadataValue.json(summary["by_rule"]),
                "quarantined_by_column_and_rule": dg.MetadataValue.json(summary["by_column_rule"]),
            }
        )

    specs = [
        dg.AssetCheckSpec(
            "rows_accounted_for",
            asset=_curated,
            blocking=True,
            description="landed = curated + quarantined: no row silently dropped",
        ),
        dg.AssetCheckSpec(
            "quarantine_within_limit",
            asset=_curated,
            blocking=True,
            description="The share of quarantined rows stays under MESOPS_MAX_QUARANTINE_SHARE",
        ),
    ] + [
        dg.AssetCheckSpec(f"rule_{name}", asset=_curated, blocking=False, description=text)
        for name, text in contract_rule_checks(contract).items()
    ]

    @dg.multi_asset_check(specs=specs, name=f"{contract.name}_contract_checks")
    def _checks(context: dg.AssetCheckExecutionContext, platform: PlatformResource):  # type: ignore[no-untyped-def]
        """Checks generated from the contract, judged on the stored curated, quarantine and landing files."""
        store = platform.store()
        batch_id = _check_partition(context)
        landed = len(store.read(store.landed_path(contract.name, batch_id)))
        curated = len(store.read(store.curated_path(contract.name, batch_id)))
        quarantine = store.read(store.quarantine_path(contract.name, batch_id))
        yield dg.AssetCheckResult(
            check_name="rows_accounted_for",
            passed=landed == curated + len(quarantine),
            metadata={"landed": landed, "curated": curated, "quarantined": len(quarantine)},
        )
        share = len(quarantine) / landed if landed else 0.0
        limit = platform.settings().max_quarantine_share
        yield dg.AssetCheckResult(
            check_name="quarantine_within_limit",
            passed=share <= limit,
            metadata={"quarantined_share": round(share, 4), "limit": limit},
        )
        broken = rule_counts(quarantine)
        for name in contract_rule_checks(contract):
            count = broken.get(name, 0)
            yield dg.AssetCheckResult(
                check_name=f"rule_{name}",
                passed=count == 0,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"quarantined_rows": count},
            )

    return [_curated, _checks]


def contract_rule_checks(contract: Contract) -> dict[str, str]:
    """One check per contract rule family: a column's value rules, and each row rule, by check name."""
    checks = {f"{c.name}": f"Values of {c.name} meet their contract rules" for c in contract.columns}
    checks.update({rule.name: rule.description for rule in contract.rules})
    checks["unique_key"] = f"No duplicate {', '.join(contract.primary_key)}"
    return checks


def rule_counts(quarantine: pd.DataFrame) -> dict[str, int]:
    """Quarantined rows per check name (column name for column rules, rule name for row rules)."""
    counts: dict[str, int] = {}
    if quarantine.empty:
        return counts
    for reasons in quarantine["_reasons"]:
        names = set()
        for violation in issues_from_json(reasons):
            if violation.rule == "duplicate_key":
                names.add("unique_key")
            elif violation.column is None:
                names.add(violation.rule)
            else:
                names.add(violation.column)
        for name in names:
            counts[name] = counts.get(name, 0) + 1
    return counts


def _check_partition(context: dg.AssetCheckExecutionContext) -> str:
    tags = context.run.tags
    key = tags.get("dagster/partition")
    if not key:
        raise dg.Failure("contract checks run per landing batch: the run has no partition")
    return key


def build_data_path_assets(contracts: dict[str, Contract]) -> list:
    """Every landing, anonymized and curated asset and check, for all contracts."""
    definitions: list = []
    for contract in contracts.values():
        definitions.append(build_landing_asset(contract))
        if contract.landing_only:
            continue
        definitions.extend(build_anonymized_asset(contract))
        definitions.extend(build_curated_asset(contract))
    return definitions
