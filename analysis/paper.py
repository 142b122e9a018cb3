"""Published numbers of the study leakwatt generalises, kept in one place with their source.

Source: arXiv 2606.19799 (2026), "The Hidden Environmental Cost of Poor Coding Practices in
TensorFlow and Keras Applications: A Study on Resource Leaks and Carbon Emissions", results table
(as transcribed in shared/reference/study-facts.md). Workload: a CNN trained on CIFAR-10 for
50 epochs on an NVIDIA Tesla T4, measured with CodeCarbon; each smell injected independently into
a clean baseline. Not published: architecture, batch size, number of runs, test used, p-values.
"""

from __future__ import annotations

from dataclasses import dataclass

SOURCE = "arXiv 2606.19799 (2026), results table"
DEVICE = "NVIDIA Tesla T4"
METER = "CodeCarbon"
WORKLOAD = "CNN on CIFAR-10, 50 epochs"
EPOCHS = 50
SCALE = "paper"
#: the Keras level closest to the paper's code. The paper does not name its TensorFlow or Keras
#: version; it is a 2026 study of TF/Keras code run eagerly on a GPU, i.e. Keras 3-era code
#: (TensorFlow >= 2.16 ships Keras 3 as ``tf.keras``). An inference, stated as such in the report.
FRAMEWORK = "keras3"
FRAMEWORK_NOTE = "TF/Keras eager code of the Keras 3 era (its version is not published)"


@dataclass(frozen=True)
class PaperRow:
    """One row of the paper's table: energy, CO2 and the % change against the clean baseline."""

    label: str
    energy_kwh: float
    emissions_kg: float
    pct_change_energy: float | None
    pct_change_emissions: float | None


CLEAN = PaperRow("clean baseline", 0.025646, 0.011608, None, None)
IMR = PaperRow("IMR injected", 0.033797, 0.015297, 31.78, 31.78)
UTR = PaperRow("UTR injected", 0.037393, 0.016921, 45.80, 45.77)

#: smell id -> the paper's row for it (the smells the paper measured).
SMELLS: dict[str, PaperRow] = {"IMR": IMR, "UTR": UTR}

#: CO2 / energy implied by the table (kg per kWh).
CARBON_INTENSITY_KG_PER_KWH = round(CLEAN.emissions_kg / CLEAN.energy_kwh, 4)

__all__ = [
    "CARBON_INTENSITY_KG_PER_KWH", "CLEAN", "DEVICE", "EPOCHS", "FRAMEWORK", "FRAMEWORK_NOTE",
    "IMR", "METER", "SCALE", "SMELLS",
    "SOURCE", "UTR", "WORKLOAD", "PaperRow",
]
