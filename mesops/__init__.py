"""mesops package."""
