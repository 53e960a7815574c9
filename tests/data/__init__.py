"""Test data shared by unit and integration tests (no Flink imports)."""
