"""Rule preprocess_dataset: cut every valid case into normalised, resized 2D slices."""

from mednca.data.stages import preprocess_stage
from mednca.logs import run_logged

settings = snakemake.params.settings
intensity = settings["intensity"]
run_logged(
    lambda: preprocess_stage(
        source_json=snakemake.input.source,
        cases_csv=snakemake.input.cases,
        out_dir=snakemake.output.slices,
        foreground_labels=tuple(settings["foreground_labels"]),
        image_size=tuple(settings["image_size"]),
        slice_axis=settings["slice_axis"],
        resize_mode=settings["resize_mode"],
        intensity_method=intensity["method"],
        lower_percentile=intensity["lower"],
        upper_percentile=intensity["upper"],
    ),
    snakemake.log[0],
)
