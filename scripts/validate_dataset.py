"""Rule validate_dataset: check every case and write the table of valid cases."""

from mednca.data.stages import validate_stage
from mednca.logs import run_logged

settings = snakemake.params.settings
run_logged(
    lambda: validate_stage(
        source_json=snakemake.input[0],
        cases_csv=snakemake.output[0],
        dataset=snakemake.wildcards.dataset,
        layout=settings["layout"],
        modalities=tuple(settings["modalities"]),
        sequences=tuple(settings["sequences"]),
        on_bad_case=snakemake.params.on_bad_case,
    ),
    snakemake.log[0],
)
