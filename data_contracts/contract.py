"""The data contract of one canonical MES table: columns, rules, personal data and vendor field mappings.

Contracts are versioned YAML files under ``data_contracts/contracts/``. Everything downstream (adapters,
anonymization, validation, Dagster checks, lineage) reads the contract instead of hard-coding a schema.
"""

from __future__ import annotations

import re
from enum import StrEnum
from functools import cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

SEMVER = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


class ColumnType(StrEnum):
    """Logical column types; validation coerces landed values to these and flags values that do not fit."""

    STRING = "string"
    INTEGER = "integer"
    FLOAT = "float"
    TIMESTAMP = "timestamp"
    DATE = "date"
    BOOLEAN = "boolean"


class PersonalData(StrEnum):
    """How a column holds personal data, which decides what anonymization does to it."""

    NONE = "none"
    IDENTIFIER = "identifier"  # a name, badge id or employee number: replaced by a keyed pseudonym
    FREE_TEXT = "free_text"  # notes and comments: personal entities inside are redacted


class Column(BaseModel):
    """One column of a canonical table and the rules each of its values must meet."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    type: ColumnType
    description: str
    nullable: bool = False
    unique: bool = False
    min: float | None = None
    max: float | None = None
    allowed: list[str] | None = Field(default=None, description="The closed set of allowed values.")
    pattern: str | None = Field(default=None, description="Regular expression every non-null value matches.")
    references: str | None = Field(
        default=None, description="'table.column' whose values this column must take (a foreign key)."
    )
    personal: PersonalData = PersonalData.NONE

    @field_validator("pattern")
    @classmethod
    def _pattern_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            re.compile(value)
        return value

    @field_validator("references")
    @classmethod
    def _reference_shape(cls, value: str | None) -> str | None:
        if value is not None and value.count(".") != 1:
            raise ValueError("references must be 'table.column'")
        return value


class RowRule(BaseModel):
    """A rule across fields of one row, as a pandas expression that is true for valid rows.

    Rows where a column of the expression is null are not judged by the rule (nullability is its own rule).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    expression: str
    description: str


class SourceKind(StrEnum):
    """The shapes extracts arrive in."""

    OPCENTER = "opcenter"  # OData v4 JSON: {"value": [...], "@odata.nextLink": ...}
    PLEX = "plex"  # Plex-style REST JSON: {"data": [...]} or a bare list
    FILE = "file"  # CSV or Parquet drops (historians, exports, public datasets)


class SourceMapping(BaseModel):
    """How one source shape maps onto this table: where the records live and vendor field -> column."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: SourceKind
    entity: str = Field(description="OData entity set, Plex resource or file stem the records come from.")
    fields: dict[str, str] = Field(description="Vendor field name -> canonical column name.")
    timestamp_format: str | None = Field(
        default=None, description="strftime format of the source's timestamps when they are not ISO 8601."
    )


class Contract(BaseModel):
    """A versioned data contract for one canonical table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    version: str
    description: str
    owner: str = "mes-integration"
    primary_key: list[str]
    event_time: str | None = Field(
        default=None, description="The column that places a row in time (daily partitions, training windows)."
    )
    columns: list[Column]
    rules: list[RowRule] = []
    landing_only: bool = Field(
        default=False,
        description="True for tables that are personal data by nature (the employee roster): they feed "
        "anonymization and never leave the landing zone.",
    )
    sources: dict[str, SourceMapping] = Field(
        default_factory=dict, description="Mapping name -> how one source shape maps onto this table."
    )

    @field_validator("version")
    @classmethod
    def _semver(cls, value: str) -> str:
        if not SEMVER.match(value):
            raise ValueError("version must be semantic: MAJOR.MINOR.PATCH")
        return value

    @model_validator(mode="after")
    def _columns_consistent(self) -> Contract:
        names = [c.name for c in self.columns]
        if len(names) != len(set(names)):
            raise ValueError(f"duplicate column names in {self.name}")
        for key in self.primary_key:
            if key not in names:
                raise ValueError(f"primary key column {key!r} is not a column")
        if self.event_time is not None and self.event_time not in names:
            raise ValueError(f"event_time column {self.event_time!r} is not a column")
        for kind, mapping in self.sources.items():
            for vendor, column in mapping.fields.items():
                if column not in names:
                    raise ValueError(f"source {kind}: field {vendor!r} maps to unknown column {column!r}")
        return self

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"{self.name} has no column {name!r}")

    def sources_of_kind(self, kind: SourceKind) -> list[SourceMapping]:
        return [m for m in self.sources.values() if m.kind == kind]

    def personal_columns(self, kind: PersonalData) -> list[str]:
        return [c.name for c in self.columns if c.personal == kind]

    @property
    def ref(self) -> str:
        """'name@version', the form lineage records."""
        return f"{self.name}@{self.version}"


class ContractError(ValueError):
    """A contract file that cannot be loaded: names the file, the field and the rule."""


def load_contract(path: Path) -> Contract:
    """Load and check one contract YAML file."""
    try:
        raw = yaml.safe_load(path.read_text())
        return Contract.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ContractError(f"{path.name}: {where}: {first['msg']}") from None
    except yaml.YAMLError as err:
        raise ContractError(f"{path.name}: not valid YAML: {err}") from None


@cache
def load_contracts(folder: Path) -> dict[str, Contract]:
    """All contracts in a folder by table name."""
    contracts: dict[str, Contract] = {}
    for path in sorted(folder.glob("*.yaml")):
        contract = load_contract(path)
        if contract.name in contracts:
            raise ContractError(f"{path.name}: a second contract for table {contract.name!r}")
        contracts[contract.name] = contract
    return contracts
