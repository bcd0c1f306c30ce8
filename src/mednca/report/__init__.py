"""The HTML report: collect results, draw figures, state findings, render one self-contained page."""
