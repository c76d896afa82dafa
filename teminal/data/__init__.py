"""Base sets (ESC-50, the embedded world), clips and temporal pair manifests (SPEC §1)."""
