"""The edge benchmark (benchmarks/edge.py) on a tiny model: fresh processes, no PyTorch with ONNX Runtime."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import PREPROCESSING

from mednca.data.stages import dataset_folder
from mednca.documents import edge_table

EDGE = Path(__file__).resolve().parents[2] / "benchmarks" / "edge.py"


def test_each_runtime_is_measured_in_its_own_process(
    nca_file: Path, prepared_phantom: Path, tmp_path: Path
) -> None:
    volume = dataset_folder(prepared_phantom / "source.json") / "imagesTr" / "phantom_000.nii.gz"
    record_file = tmp_path / "edge.json"
    command = [sys.executable, str(EDGE), "--model", str(nca_file), "--volume", str(volume)]
    command += ["--repeats", "2", "--threads", "1", "--out", str(record_file)]
    subprocess.run(command, check=True, capture_output=True, text=True)
    record = json.loads(record_file.read_text())
    rows = {(row["workload"], row["runtime"]): row for row in record["rows"]}
    assert set(rows) == {(w, r) for w in ("volume", "slice320") for r in ("pytorch", "onnxruntime")}
    assert not rows["volume", "onnxruntime"]["torch_imported"] and rows["volume", "pytorch"]["torch_imported"]
    assert all(row["p90_s"] >= row["median_s"] > 0 and row["peak_rss_mb"] > 10 for row in rows.values())
    assert record["volume"]["slices"][2:] == list(PREPROCESSING.image_size)
    assert "| volume | onnxruntime | 1 |" in edge_table([record])
