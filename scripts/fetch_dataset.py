"""Rule fetch_dataset: make the raw dataset folder available and record where it is."""

from mednca.data.stages import PhantomSpec, fetch_stage
from mednca.logs import run_logged

settings = snakemake.params.settings
synthetic = settings["synthetic"]
phantom = None
if synthetic is not None:
    phantom = PhantomSpec(
        cases=synthetic["cases"],
        seed=synthetic["seed"],
        shape=tuple(synthetic["shape"]),
        shape_jitter=synthetic["shape_jitter"],
        modalities=synthetic["modalities"],
    )

run_logged(
    lambda: fetch_stage(
        data_dir=snakemake.params.data_dir,
        folder=settings["folder"],
        source_json=snakemake.output[0],
        archive=settings["archive"],
        url=settings["url"],
        md5=settings["md5"],
        phantom=phantom,
    ),
    snakemake.log[0],
)
