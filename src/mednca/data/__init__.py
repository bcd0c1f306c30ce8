"""Data stage: download, validation, preprocessing into 2D slices, patient-level split, synthetic phantoms."""
