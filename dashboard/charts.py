"""Pure DataFrame -> chart functions."""

from __future__ import annotations

import altair as alt
import pandas as pd


def images_per_day(df: pd.DataFrame) -> alt.Chart:
    daily = df.groupby(["captured_on", "label"], as_index=False)["images"].sum()
    return (
        alt.Chart(daily)
        .mark_bar()
        .encode(
            x=alt.X("captured_on:T", title="day"),
            y=alt.Y("images:Q", title="images with a detection"),
            color=alt.Color("label:N", title="label"),
            tooltip=["captured_on:T", "label:N", "images:Q"],
        )
    )
