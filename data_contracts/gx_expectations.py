"""The GX expectations contract suites are made of: GX's own column expectations, each building its configuration once.

GX 1.x rebuilds an expectation's ``configuration`` from the expectation's pydantic fields every time it is
read, and one validation run reads it about 130 times per expectation (metric dependencies, runtime kwargs,
result building): 15-20 ms of fixed cost per expectation per run, seconds per ingest batch, whatever the row
count. These subclasses are GX's custom-expectation mechanism (a subclass registers under its own
``expectation_type``; metrics, validation and rendering are inherited unchanged) and only memoize that
configuration per instance: for one run of one expectation on the instances GX makes from the suite for every
run, and for the suite's own instances unless they hold a suite parameter (GX fills those in place). Any
change to a field clears the memo.

Imported lazily by :mod:`data_contracts.gx_suite`, like GX itself.
"""

from __future__ import annotations

from typing import Any

import great_expectations.expectations as gxe
from great_expectations.compatibility.pydantic import PrivateAttr
from great_expectations.core.suite_parameters import is_suite_parameter
from great_expectations.expectations.expectation_configuration import ExpectationConfiguration


class ConfigurationOnce:
    """Mixin for a GX Expectation: ``configuration`` is built on first read and reused until a field changes.

    Each concrete class declares the private attribute ``_built_configuration`` (pydantic collects private
    attributes from the model class itself, not from a plain mixin).
    """

    _built_configuration: ExpectationConfiguration | None

    @property
    def configuration(self) -> ExpectationConfiguration:
        if self._built_configuration is not None:
            return self._built_configuration
        built: ExpectationConfiguration = super().configuration  # type: ignore[misc]
        # GX writes suite parameter values into a configuration in place (once per object): one holding a
        # $PARAMETER must be fresh on every read, or the first run's values would stick to the suite.
        if not any(is_suite_parameter(value) for value in built.kwargs.values()):
            self._built_configuration = built
        return built

    def __setattr__(self, name: str, value: Any) -> None:
        if not name.startswith("_"):
            object.__setattr__(self, "_built_configuration", None)  # a changed field: rebuild on next read
        super().__setattr__(name, value)  # type: ignore[misc]


class ExpectContractColumnValuesToNotBeNull(ConfigurationOnce, gxe.ExpectColumnValuesToNotBeNull):
    """GX's ExpectColumnValuesToNotBeNull with its configuration built once per run."""

    _built_configuration: ExpectationConfiguration | None = PrivateAttr(default=None)


class ExpectContractColumnValuesToBeBetween(ConfigurationOnce, gxe.ExpectColumnValuesToBeBetween):
    """GX's ExpectColumnValuesToBeBetween with its configuration built once per run."""

    _built_configuration: ExpectationConfiguration | None = PrivateAttr(default=None)


class ExpectContractColumnValuesToBeInSet(ConfigurationOnce, gxe.ExpectColumnValuesToBeInSet):
    """GX's ExpectColumnValuesToBeInSet with its configuration built once per run."""

    _built_configuration: ExpectationConfiguration | None = PrivateAttr(default=None)


class ExpectContractColumnValuesToMatchRegex(ConfigurationOnce, gxe.ExpectColumnValuesToMatchRegex):
    """GX's ExpectColumnValuesToMatchRegex with its configuration built once per run."""

    _built_configuration: ExpectationConfiguration | None = PrivateAttr(default=None)
