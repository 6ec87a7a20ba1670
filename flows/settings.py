"""One typed settings object for the whole pipeline.

Values come, highest first, from: explicit arguments (the CLI's options), ``TRAPFLOW_*``
environment variables, a ``trapflow.toml`` file (path in ``TRAPFLOW_CONFIG``, else
``./trapflow.toml``), then the defaults below. Nested values use ``__`` in the environment,
e.g. ``TRAPFLOW_DETECTION_THRESHOLDS__PERSON=0.6``.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from flows.dbt_vars import DBT_PROJECT_FILE as DBT_PROJECT_FILE
from flows.dbt_vars import DBT_VAR_SETTINGS as DBT_VAR_SETTINGS
from flows.dbt_vars import dbt_default
from flows.dbt_vars import dbt_defaults as dbt_defaults
from flows.errors import UserError
from flows.settings_marts import CATEGORIES as CATEGORIES
from flows.settings_marts import MartSettings, listed
from models_ml.media_types import MEDIA_EXTENSIONS as MEDIA_EXTENSIONS

if TYPE_CHECKING:
    from flows.store.station_tables import CTOptions

REPO_ROOT = Path(__file__).resolve().parents[1]


class SettingsError(UserError, ValueError):
    """A setting has a value trapflow cannot use; the message is one line naming it and the fix."""


def _default_mirror() -> str | None:
    """The model mirror of this repo's checkouts: ``../shared/models`` when it exists."""
    beside = REPO_ROOT.parent / "shared" / "models"
    return str(beside) if beside.is_dir() else None


class AlertRule(BaseModel):
    """One alert rule (see docs/alerts.md). URLs never live here: ``channels`` names them."""

    name: str = Field(description="Unique name; part of every alert's id.")
    kind: Literal["human", "label", "population", "silent"] = "human"
    min_confidence: float = Field(default=0.7, ge=0.0, le=1.0, description="human: any person box")
    labels: dict[str, float] = Field(
        default_factory=dict, description="label: label -> minimum confidence (lower case)"
    )
    sites: list[str] = Field(default_factory=list, description="Only these sites (empty: all).")
    hours: list[str] = Field(
        default_factory=list,
        description="Camera-local time windows 'HH:MM-HH:MM' (may wrap midnight); empty: all day.",
    )
    z_threshold: float = Field(default=2.0, gt=0.0, description="population: |z| at least this")
    channels: list[str] = Field(
        default_factory=list,
        description="alert_channels names ('default': TRAPFLOW_ALERT_URLS); empty: default.",
    )
    cooldown_min: float | None = Field(
        default=None, ge=0.0, description="Per site; default: alert_cooldown_min."
    )


class ChannelOptions(BaseModel):
    """How a named channel takes its alerts (``[alert_channel_options.NAME]``); no URL here."""

    digest: bool = Field(
        default=False,
        description="One message a day (counts per species, new species, people, silent "
        "cameras) instead of one per photo (docs/alerts.md).",
    )


class Settings(MartSettings, BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TRAPFLOW_",
        env_nested_delimiter="__",
        extra="ignore",
        validate_default=True,
    )

    # Where things are
    source: str = Field(
        default="inbox",
        description="Folder or fsspec URL (s3://bucket/prefix) polled for new media.",
    )
    home: Path = Field(
        default=Path(".trapflow"),
        description="Working folder: the default warehouse, verified models and dbt's scratch.",
    )
    warehouse: Path | None = Field(
        default=None, description="DuckDB file of the warehouse (default: <home>/warehouse.duckdb)."
    )
    model_dir: Path | None = Field(
        default=None, description="Where verified model files live (default: <home>/models)."
    )
    lake: str | None = Field(
        default=None,
        description="Scale-out: a DuckLake every worker writes its raw rows into at once, "
        "'ducklake:postgres:dbname=trapflow host=...' (many machines), "
        "'ducklake:sqlite:/data/lake.sqlite' or 'ducklake:/data/lake.ducklake' (one machine); "
        "the marts builder copies one snapshot (docs/scaling.md). A plain folder or s3:// URL: "
        "the legacy Parquet lake. Unset: the DuckDB file.",
    )
    lake_data_path: str | None = Field(
        default=None,
        description="Where a DuckLake keeps its Parquet files: a folder or s3://bucket/prefix "
        "(credentials from AWS_*). Needed with a PostgreSQL catalog; a file catalog's default "
        "is '<catalog>.files/' beside it.",
    )
    model_mirror: str | None = Field(
        default_factory=_default_mirror,
        description="Folder or http(s) base URL the models are pulled from.",
    )
    standards_dir: Path = Field(
        default=REPO_ROOT.parent / "shared" / "standards",
        description="Local copies of the data standards' schemas (camtrap-dp-1.0/*-table-schema"
        ".json): `trapflow import camtrapdp` validates against them, never the package's URLs.",
    )

    # What to pick up and how to name it
    layout: str | None = Field(
        default=None,
        description="Folder pattern naming site and camera, e.g. '{site}/{camera}/...'; a "
        "'{species}' folder (camtrapR's species directories, '{site}/{species}') is a human label "
        "of every photo in it. Without it, site and camera are the parent folder's name.",
    )
    full_listing_every_n: int = Field(
        default=60,
        ge=0,
        description="With a date layout ('{site}/{camera}/{yyyy-mm}/...') a poll lists only each "
        "camera's newest known month and newer; every n-th run of a source lists everything, "
        "catching a late file in an older month (docs/polling.md). 0: only the first run.",
    )
    full_listing: bool = Field(
        default=False,
        description="List the whole source on this run (trapflow run --full-listing).",
    )
    species_keyword_parent: str = Field(
        default="Species",
        description="Parent tag of the species in photos' XMP hierarchical keywords "
        "('Species|Leopard Cat', as digiKam, Lightroom and Timelapse write them; camtrapR's "
        "metadataSpeciesTag): those names come in as human labels. Empty: keywords are not read.",
    )
    extensions: Annotated[tuple[str, ...], NoDecode] = Field(
        default=MEDIA_EXTENSIONS,
        description="Image and video extensions picked up (case-insensitive).",
    )
    video_sample_rate: float = Field(
        default=1.0,
        ge=0.0,
        description="Frames per second sampled from clips, plus the first; 0 = every frame.",
    )
    video_max_frames: int | None = Field(
        default=None, ge=1, description="Sampled frames per clip, at most (none: no limit)."
    )
    max_image_pixels: int = Field(
        default=80_000_000,
        description="Larger images are quarantined as decompression bombs, before decoding.",
    )

    # Inference
    animal_model: str = Field(
        default_factory=dbt_default("animal_detector"),
        description="Detector for animals; its animal boxes are counted (dbt var animal_detector).",
    )
    general_model: str = Field(
        default_factory=dbt_default("person_vehicle_detector"),
        description="Detector for persons and vehicles; its boxes of those are counted (dbt var "
        "person_vehicle_detector).",
    )
    person_cue_model: str | None = Field(
        default_factory=dbt_default("person_cue_detector"),
        description="ImageNet classifier looking for apparel and gear in animal boxes "
        "(a second opinion on people); empty to switch off.",
    )
    inference_floor: float = Field(
        default=0.05, ge=0.0, le=1.0, description="Boxes below this are not stored."
    )
    inference_workers: int = Field(
        default=0,
        ge=0,
        description="Model calls running at once in one process (0: auto, 2 on up to 7 "
        "cores, cores / 4 above).",
    )
    intra_op_threads: int = Field(
        default=0,
        ge=0,
        description="onnxruntime threads per session (0: the cores shared out between the "
        "inference_workers).",
    )
    batch_size: int = Field(default=32, ge=1, description="Images per task and per transaction.")
    general_categories: tuple[str, ...] = Field(
        default=("person", "vehicle", "animal"),
        description="Categories kept from general_model (drop 'animal' to trust only "
        "animal_model for animals).",
    )
    species_model: str | None = Field(
        default=None,
        description="Species classifier on animal crops (a head over the embedder, or a user "
        "ONNX classifier registered under [models]); none: the latest trained head, else "
        "labels stay the detector's; '': off.",
    )
    behaviour_model: str | None = Field(
        default=None,
        description="Behaviour head on the sampled frames of clips (trapflow train --clips); "
        "none: the latest trained one; '': off. Never replaces the species.",
    )
    classification_top_k: int = Field(default=3, ge=1, description="Labels kept per crop.")
    classification_min_confidence: float = Field(
        default=0.2, ge=0.0, le=1.0, description="Animal boxes below this are not classified."
    )
    geofence_file: Path | None = Field(
        default=None, description="TOML of the taxa allowed per site (see docs/models.md)."
    )
    repeat_min_occurrences: int = Field(
        default=20, ge=2, description="Repeat detection: images a box must recur in."
    )
    repeat_iou: float = Field(default=0.9, gt=0.0, le=1.0, description="Repeat detection IoU.")
    repeat_max_box_area: float = Field(
        default=0.2, gt=0.0, le=1.0, description="Repeat detection: larger boxes are ignored."
    )
    repeat_min_confidence: float = Field(
        default=0.1, ge=0.0, le=1.0, description="Repeat detection: lower boxes are ignored."
    )
    ocr_model: str | None = Field(
        default="ppocrv4_ocr",
        description="Reads the time printed on the photo when EXIF has none "
        "(timestamp_source 'ocr'); empty switches it off.",
    )
    ocr_dayfirst: bool | None = Field(
        default=None,
        description="Info bars like 05/06/2024: day first (true), month first (false), "
        "or decide from the digits (unset: month first when ambiguous).",
    )
    ocr_every_photo: bool = Field(
        default=False,
        description="Read the info bar of photos with an EXIF time too (ocr_captured_at), so "
        "the Time problems check can compare the two clocks; slower ingest.",
    )
    models: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Your own models by path and SHA-256, e.g. [models.my_mdv5] file=..., "
        "sha256=..., decoder='yolov5' (see docs/models.md).",
    )

    # Serving
    interval: int = Field(default=60, ge=1, description="Seconds between polls (serve).")
    # trapflow listen (docs/listen.md): bucket notifications over HTTP, a folder's file events
    listen_host: str = Field(
        default="127.0.0.1", description="Address the webhook binds to (loopback unless set)."
    )
    listen_port: int = Field(default=8790, ge=0, le=65535, description="Webhook port (0: any).")
    listen_token: SecretStr | None = Field(
        default=None,
        description="Shared token senders put in 'Authorization: Bearer <token>' (secret, "
        "16+ characters); the webhook refuses to start without it.",
    )
    listen_max_attempts: int = Field(
        default=3, ge=1, description="Failed tries of an event, then listen.dead_letters."
    )
    listen_retry_s: float = Field(
        default=10.0, ge=0.0, description="Wait before an event is tried again; doubles."
    )
    listen_settle_s: float = Field(
        default=1.0, gt=0.0, description="Folder: a file is taken once unchanged this long."
    )
    listen_sqs_queue: str | None = Field(
        default=None,
        description="URL of an SQS queue that gets the bucket's S3 event notifications: "
        "long-polled instead of the webhook (--sqs).",
    )
    listen_sqs_wait_s: int = Field(
        default=20, ge=0, le=20, description="SQS long poll: seconds a receive waits."
    )
    listen_sqs_visibility_s: int = Field(
        default=60, ge=1, le=43200,
        description="SQS: seconds a received message stays hidden before it comes again.",
    )  # fmt: skip

    # Alerts (docs/alerts.md); URLs are secrets: from the environment or a Prefect Secret block
    alert_rules: list[AlertRule] = Field(
        default_factory=lambda: [AlertRule(name="human", kind="human", min_confidence=0.7)],
        description="Alert rules (TOML [[alert_rules]] or TRAPFLOW_ALERT_RULES as JSON).",
    )
    alert_urls: SecretStr | None = Field(
        default=None, description="Comma-separated Apprise URLs: the default channel (secret)."
    )
    alert_channels: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Named channels: TRAPFLOW_ALERT_CHANNELS__RANGERS='tgram://...,mailto://...' "
        "or 'prefect-secret:BLOCK' (secret).",
    )
    ranger_channels: Annotated[tuple[str, ...], NoDecode] = Field(
        default=("rangers",),
        description="Channels trusted with exact coordinates and unblurred thumbnails; every "
        "other channel gets sensitive locations generalised and people blurred "
        "(TRAPFLOW_RANGER_CHANNELS=rangers,wardens).",
    )
    alert_channel_options: dict[str, ChannelOptions] = Field(
        default_factory=dict,
        description="Per channel: [alert_channel_options.rangers] digest = true "
        "(TRAPFLOW_ALERT_CHANNEL_OPTIONS__RANGERS__DIGEST=true).",
    )
    alert_cooldown_min: float = Field(
        default=30.0, ge=0.0, description="One alert per site and rule per this many minutes."
    )
    alert_max_attempts: int = Field(default=10, ge=1, description="Then the alert is 'failed'.")
    alert_backoff_s: float = Field(default=60.0, ge=0.0, description="First retry delay; doubles.")
    alert_timeout_s: float = Field(default=10.0, gt=0.0, description="Apprise cto/rto per URL.")
    dashboard_url: str = Field(
        default="http://127.0.0.1:8501", description="Base of the image links in alerts."
    )
    dashboard_map_style: str | None = Field(
        default=None,
        description="Base map under the Sites map: none (offline: points only), a CARTO style "
        "(light, dark, road: fetched from CARTO's servers by the browser) or the URL of a "
        "MapLibre style.json, e.g. from a self-hosted tile server.",
    )
    # Dashboard access (flows/access/signin.py, docs/security.md)
    dashboard_auth: Literal["none", "password", "oidc", "proxy"] = Field(
        default="none",
        description="Sign-in: none (only on 127.0.0.1/localhost/::1, you are a ranger), "
        "password (dashboard_users_file), oidc (Streamlit's st.login, [auth] in "
        ".streamlit/secrets.toml) or proxy (a reverse proxy's X-Forwarded-User).",
    )
    dashboard_users_file: Path | None = Field(
        default=None,
        description="Password sign-in users (default <home>/dashboard_users); "
        "`trapflow dashboard users add NAME --role viewer|ranger`.",
    )
    dashboard_ranger_emails: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="oidc/proxy: e-mails or user names with the ranger role ('@example.org': "
        "a whole domain); everyone else signed in is a viewer.",
    )
    dashboard_trust_proxy_header: bool = Field(
        default=False,
        description="proxy: trust X-Forwarded-User / X-Trapflow-Role (only when nothing but "
        "the proxy can reach the dashboard).",
    )

    @field_validator("alert_channel_options")
    @classmethod
    def _lower_channel_names(cls, value: dict[str, ChannelOptions]) -> dict[str, ChannelOptions]:
        return {name.lower(): options for name, options in value.items()}

    @field_validator("ranger_channels", mode="before")
    @classmethod
    def _split_channels(cls, value: Any) -> Any:
        return tuple(v.lower() for v in listed(value))

    @field_validator("extensions", mode="before")
    @classmethod
    def _lower_extensions(cls, value: Any) -> Any:
        return tuple(v.lower().lstrip(".") for v in listed(value))

    @field_validator("dashboard_ranger_emails", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        return listed(value)

    @model_validator(mode="after")
    def _check_lake(self) -> Settings:
        from flows.store.lake_url import LakeError, check_lake_setting

        try:
            check_lake_setting(self.lake, self.lake_data_path)
        except LakeError as exc:
            raise SettingsError(str(exc)) from None
        return self

    @model_validator(mode="after")
    def _default_species_model(self) -> Settings:
        # unset species_model: the head `trapflow train` registered last (docs/training.md);
        # species_model = "" switches the species stage off
        if self.species_model is None:
            from models_ml.training import latest_trained

            self.species_model = latest_trained(self.model_path)
        if self.behaviour_model is None:
            from models_ml.training import latest_trained

            self.behaviour_model = latest_trained(self.model_path, "behaviour")
        return self

    @property
    def model_names(self) -> list[str]:
        """Every model a run uses."""
        names = [
            self.animal_model, self.general_model, self.person_cue_model, self.species_model,
            self.ocr_model, self.behaviour_model,
        ]  # fmt: skip
        return [n for n in names if n]

    def station_table_options(self) -> CTOptions:
        """How to read this run's camtrapR CTtable (flows/store/station_tables.py)."""
        from flows.store.station_tables import CTOptions

        return CTOptions(
            date_format=self.station_date_format,
            station_column=self.station_column,
            camera_column=self.station_camera_column,
            session_column=self.station_session_column,
            setup_column=self.station_setup_column,
            retrieval_column=self.station_retrieval_column,
            x_column=self.station_x_column,
            y_column=self.station_y_column,
            crs=self.station_crs,
            timezone=self.station_timezone,
            timezone_column=self.station_timezone_column,
        )

    def dbt_vars(self) -> dict[str, object]:
        """Every var dbt_project.yml declares, from these settings (``dbt --vars``): the marts
        count what this run's settings say, whatever the user changed."""
        values: dict[str, object] = {}
        for var, name in DBT_VAR_SETTINGS.items():
            value = getattr(self, name)
            if isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, dict):
                value = dict(value)
            values[var] = "" if value is None else value
        return values

    @property
    def warehouse_path(self) -> Path:
        return (self.warehouse or self.home / "warehouse.duckdb").expanduser().absolute()

    @property
    def model_path(self) -> Path:
        return (self.model_dir or self.home / "models").expanduser().absolute()

    @property
    def scratch_path(self) -> Path:
        """dbt's target and log folders, kept beside the warehouse they describe."""
        return self.warehouse_path.parent / (self.warehouse_path.stem + ".dbt")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = Path(os.environ.get("TRAPFLOW_CONFIG", "trapflow.toml"))
        try:
            toml = TomlConfigSettingsSource(settings_cls, toml_file=toml_file)
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(
                f"{toml_file} is not valid TOML ({exc}); fix that line (README.md has an example)"
            ) from None
        _refuse_unknown_keys(toml.toml_data, settings_cls, toml_file)
        return (init_settings, env_settings, toml)


def _refuse_unknown_keys(data: dict[str, Any], cls: type[BaseSettings], path: Path) -> None:
    """A key of trapflow.toml that is no setting (a typo) would silently leave the default."""
    for key in data:
        if key not in cls.model_fields:
            close = difflib.get_close_matches(key, list(cls.model_fields), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise SettingsError(
                f"{path}: '{key}' is no trapflow setting; {hint}fix or remove it "
                "('trapflow config' lists the settings)"
            )


def _explain(error: ValidationError) -> str:
    """One line for a settings mistake: which setting, what is wrong, where to fix it."""
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "settings"
        got = item.get("input")
        shown = "" if isinstance(got, dict) or got is None else f" (got {got!r})"
        problems.append(f"{where}: {item['msg']}{shown}")
    config = os.environ.get("TRAPFLOW_CONFIG", "trapflow.toml")
    return (
        f"invalid setting: {'; '.join(problems)}. Fix it in {config}, the TRAPFLOW_* environment "
        "or the command's options (see 'trapflow config' and README.md)."
    )


def load_settings(**overrides: Any) -> Settings:
    """Settings with the given overrides (``None`` values are ignored, as unset CLI options).

    Raises SettingsError (one line: the setting, the problem, where to fix it) on a bad value.
    """
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise SettingsError(_explain(exc)) from None
