# %% [markdown]
# # Features: derived measurements
#
# The middle notebook of the pipeline, kept as a Jupytext percent script (it diffs
# and reviews like code; open it in JupyterLab as a notebook through Jupytext).
# It reads the table `ingest.ipynb` writes and writes the one `model.ipynb` reads.

# %%
import pandas as pd

# %% tags=["parameters"]
interactions = True

# %% [markdown]
# Standardise the measurements, and add the products of the strongest pairs.

# %% tags=["step:build", "in:data/diabetes.csv"]
raw = pd.read_csv("data/diabetes.csv")
columns = [c for c in raw.columns if c != "target"]
features = (raw[columns] - raw[columns].mean()) / raw[columns].std()
if interactions:
    features["bmi_x_bp"] = features["bmi"] * features["bp"]
    features["bmi_x_ltg"] = features["bmi"] * features["ltg"]
features["target"] = raw["target"]
features.shape

# %% [markdown]
# The table the model notebook fits on.

# %% tags=["step:save", "out:data/features.csv"]
features.to_csv("data/features.csv", index=False)
len(features.columns)
