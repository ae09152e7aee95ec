"""Reusable Textual widgets: plotext plots and the mask heatmap."""
