"""Notebooks in the idioms of real analysis notebooks, every code cell a step.

Written for the fidelity harness (``test_fidelity.py``) after reading public teaching and
analysis notebooks: the idioms are theirs (a generator drawn from in several cells, a
NumPy view written through, a pandas index shared by two objects, helpers that change
their argument, ``%timeit`` next to the real computation, imports and data in one cell,
variables shown by name through ``eval``...), the code is ours. Each notebook is a list of
cell sources; ``cells(name)`` tags them ``step:s0``, ``step:s1``...
"""

from __future__ import annotations

CORPUS: dict[str, list[str]] = {
    # 1. one generator, drawn from in several steps
    "generator_draws": [
        "import numpy as np\nrng = np.random.default_rng(42)",
        "dice = rng.integers(1, 7, size=20)\ndice.mean()",
        "coins = rng.integers(0, 2, size=10)\nprint(coins.sum())",
        "noise = rng.normal(0, 1.5, size=5)\nnoise.round(3)",
        "sample = rng.choice(dice, size=4, replace=False)\nsample",
        "summary = {'dice': float(dice.mean()), 'coins': int(coins.sum()), 'noise': float(noise.std())}\nsummary",
    ],
    # 2. NumPy views written through
    "numpy_views": [
        "import numpy as np\nx2 = np.arange(12).reshape(3, 4)\nx2",
        "x2_sub = x2[:2, :2]\nx2_sub[0, 0] = 99\nx2_sub",
        "row = x2[1]\nrow *= 2\nprint(x2.sum())",
        "x2_copy = x2[:2, :2].copy()\nx2_copy[0, 0] = 42\nprint(x2[0, 0], x2_copy[0, 0])",
        "total = int(x2.sum())\ncolumn_means = x2.mean(axis=0)\ntotal",
    ],
    # 3. a pandas Index shared by a Series and a DataFrame
    "shared_index": [
        "import pandas as pd\nindex = pd.MultiIndex.from_product([['a', 'b'], [2019, 2020]], names=['state', 'year'])",
        "pop = pd.Series([10, 12, 30, 33], index=index)\nframe = pd.DataFrame({'area': [1.5, 1.5, 4.0, 4.0]}, index=index)",
        "pop.index.names = ['region', 'year']\npop",
        "density = frame.assign(pop=pop.values)\ndensity['per_area'] = density['pop'] / density['area']\ndensity",
        "levels = list(frame.index.names)\nprint(levels)",
        "by_region = density.groupby(level=0)['pop'].sum()\nby_region",
    ],
    # 4. functions that change their argument
    "inplace_functions": [
        "import numpy as np\ncounts = np.zeros(6, dtype=int)\nidx = np.array([0, 1, 1, 3, 3, 3])",
        "np.add.at(counts, idx, 1)\ncounts",
        "dst = np.empty(4)\nnp.copyto(dst, np.linspace(0, 1, 4))\nnp.put(dst, [0], -1.0)\ndst",
        "m = np.ones((3, 3))\nnp.fill_diagonal(m, 5)\nnp.putmask(m, m > 4, 7)\nm.sum()",
        "deck = list(range(10))\nimport random\nrandom.Random(3).shuffle(deck)\ndeck",
        "report = (int(counts.sum()), float(dst.sum()), float(m.sum()), deck[:3])\nreport",
    ],
    # 5. variables shown by name through eval
    "eval_display": [
        "def show(*names):\n    for name in names:\n        print(name, '=', repr(eval(name)))",
        "alpha = 3\nbeta = [1, 2, 3]",
        "gamma = alpha * 2\nshow('gamma')",
        "show('alpha', 'beta')",
        "delta = sum(beta) + alpha\nshow('delta', 'alpha')",
    ],
    # 6. %timeit next to the computation it times
    "timeit_cells": [
        "import numpy as np\ndata = np.random.default_rng(0).normal(size=2000)",
        "%timeit -n1 -r1 counts, edges = np.histogram(data, bins=10)\ncounts, edges = np.histogram(data, bins=10)",
        "%timeit -n1 -r1 (np.sort(data))\nordered = np.sort(data)\nordered[:3]",
        "%%timeit -n1 -r1\nsquares = data ** 2",
        "peak = int(counts.argmax())\nprint(peak, round(float(edges[peak]), 3))",
    ],
    # 7. imports and data in one cell
    "imports_and_data": [
        "import numpy as np\nimport pandas as pd\nthreshold = 0.5\nlabels = ['low', 'mid', 'high']",
        "grid = np.linspace(0, 1, 11)\ngrid[:4]",
        "table = pd.DataFrame({'x': np.arange(6), 'y': np.arange(6) ** 2})\ntable.describe()",
        "flags = grid > threshold\nint(flags.sum())",
        "binned = pd.cut(table['y'], bins=3, labels=labels)\nbinned.value_counts().sort_index()",
        "ratio = float(np.mean(table['y'] / (table['x'] + 1)))\nround(ratio, 4)",
    ],
    # 8. a helper that cleans a frame in place
    "mutating_helper": [
        "import numpy as np\nimport pandas as pd",
        "def clean(df):\n    df['score'] = df['score'].fillna(0)\n    df['name'] = df['name'].str.strip()",
        "raw = pd.DataFrame({'name': [' ann', 'bob ', ' cy'], 'score': [1.0, np.nan, 3.5]})",
        "clean(raw)\nraw",
        "mean_score = float(raw['score'].mean())\nnames = raw['name'].tolist()\nmean_score, names",
        "def bump(values, by):\n    values.extend([by, by])",
        "scores = [1, 2]\nbump(scores, 5)\nscores",
        "final = sum(scores) + mean_score\nfinal",
    ],
    # 9. word counts with a Counter and dictionaries updated in place
    "text_counts": [
        "from collections import Counter, defaultdict\ntext = 'the cat sat on the mat the end'",
        "words = text.split()\ncounts = Counter(words)\ncounts.most_common(2)",
        "counts.update(['cat', 'cat'])\nby_length = defaultdict(list)\nfor w in words:\n    by_length[len(w)].append(w)",
        "top = counts.most_common(3)\nlongest = max(by_length)\ntop, longest",
        "vocab = sorted(set(words))\nindex_of = {w: i for i, w in enumerate(vocab)}\nlen(index_of)",
    ],
    # 10. an iterator consumed across cells
    "iterator_steps": [
        "records = [('a', 1), ('b', 2), ('c', 3), ('d', 4)]\nit = iter(records)",
        "header = next(it)\nheader",
        "second = next(it)\nsecond",
        "rest = list(it)\nrest",
        "keys = [k for k, _ in records]\nsizes = len(rest) + 2\nkeys, sizes",
    ],
    # 11. a grouped report
    "grouped_report": [
        "import pandas as pd\nimport numpy as np\nsales = pd.DataFrame({'shop': list('abcabcab'), 'units': [3, 5, 2, 7, 1, 4, 6, 2]})",
        "sales['price'] = np.where(sales['shop'] == 'a', 2.5, 4.0)\nsales['revenue'] = sales['units'] * sales['price']",
        "per_shop = sales.groupby('shop').agg(units=('units', 'sum'), revenue=('revenue', 'sum'))\nper_shop",
        "per_shop['share'] = per_shop['revenue'] / per_shop['revenue'].sum()\nper_shop.round(3)",
        "sales.loc[sales['units'] > 5, 'units'] = 5\nbest = sales.sort_values('revenue').iloc[-1]['shop']\nbest",
        "summary = per_shop.merge(sales.groupby('shop').size().rename('visits'), left_index=True, right_index=True)\nsummary",
    ],
    # 12. a small class whose objects change through methods
    "accumulator_class": [
        "class Accumulator:\n    def __init__(self):\n        self.items = []\n    def add(self, x):\n        self.items.append(x)\n        return self\n    def total(self):\n        return sum(self.items)",
        "acc = Accumulator()\nacc.add(3).add(4)",
        "for v in range(3):\n    acc.add(v * 10)\nprint(acc.total())",
        "snapshot = list(acc.items)\nsnapshot",
        "other = Accumulator().add(acc.total())\nother.items",
    ],
}


def cells(name: str) -> list[tuple[str, str]]:
    """``(step name, source)`` of every cell of notebook ``name``."""
    return [(f"s{i}", source) for i, source in enumerate(CORPUS[name])]
