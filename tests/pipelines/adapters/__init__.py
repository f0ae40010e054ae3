"""Tests of the MES source adapters."""
