"""Rule data_efficiency_table: one row per run of the data-efficiency study."""

from mednca.evaluate.efficiency import efficiency_table_stage
from mednca.logs import run_logged

run_logged(
    lambda: efficiency_table_stage(
        dataset=snakemake.params.dataset,
        runs=snakemake.params.runs,
        scores=list(snakemake.input.scores),
        trainings=list(snakemake.input.trainings),
        table_csv=snakemake.output[0],
    ),
    snakemake.log[0],
)
