"""The machine facts every record carries, and how documents name a machine."""

from __future__ import annotations

from mednca import provenance
from mednca.documents import machine_text


def test_a_machine_names_its_cpu_and_threads_and_no_limit_by_default(monkeypatch) -> None:
    for name in provenance.ISA_LIMIT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    machine = provenance.machine(2)
    assert machine["threads"] == 2 and "isa_limit" not in machine
    assert set(machine["isa"]) <= set(provenance.ISA_FLAGS)


def test_kernels_held_below_the_cpu_are_recorded_and_named(monkeypatch) -> None:
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    monkeypatch.delenv("MKL_ENABLE_INSTRUCTIONS", raising=False)
    machine = provenance.machine(2)
    assert machine["isa_limit"] == {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    text = machine_text({**machine, "cpu": "Test CPU", "isa": ["avx2", "avx512f"]})
    assert text == "Test CPU (AVX2/AVX512F), 2 threads, kernels limited to AVX2"
    assert machine_text({"cpu": "Test CPU", "isa": [], "threads": 1}) == "Test CPU (no SIMD flags), 1 threads"
