"""Med-NCA reproduction: data, models, training, robustness studies and reports for MRI segmentation."""

__version__ = "0.1.0"
