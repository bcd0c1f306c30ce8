"""Rule split_dataset: assign every valid case to train, validation or test and write the manifest."""

from mednca.data.stages import split_stage
from mednca.logs import run_logged

settings = snakemake.params.settings
run_logged(
    lambda: split_stage(
        cases_csv=snakemake.input[0],
        manifest_csv=snakemake.output[0],
        test_fraction=settings["test_fraction"],
        seed=settings["split_seed"],
        validation_fraction=settings["validation_fraction"],
    ),
    snakemake.log[0],
)
