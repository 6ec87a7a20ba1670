"""Making sure the configured models are present and verified before a run."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from flows.errors import UserError
from flows.settings import Settings
from models_ml import registry


class ModelsUnavailableError(UserError, RuntimeError):
    """A configured model is not in the registry or not usable; the message says what to fix."""


def ensure_models(settings: Settings, names: Iterable[str]) -> Path:
    """The model folder, with every named model verified there (pulled when missing)."""
    manifest = registry.load_manifest()
    model_dir = settings.model_path
    for name in names:
        if name not in manifest:
            raise ModelsUnavailableError(
                f"model '{name}' is not in the registry ({', '.join(sorted(manifest))}); "
                "check animal_model / general_model in trapflow.toml"
            )
        spec = manifest[name]
        if registry.verify(spec, model_dir).ok:
            continue
        if not settings.model_mirror:
            raise ModelsUnavailableError(
                f"model '{name}' is not in {model_dir} and no mirror is configured: set "
                "TRAPFLOW_MODEL_MIRROR to a folder or http(s) URL holding the models, then run "
                "'trapflow models pull'"
            )
        registry.pull(spec, model_dir, settings.model_mirror)
    return model_dir


def model_ids(settings: Settings) -> list[str]:
    """``name@version`` of each model a run uses, as stored with its detections (the user's
    own ``[models.<name>]`` entries included)."""
    from flows.pipeline.context import configured_manifest

    manifest = configured_manifest(settings)
    return [manifest[n].model_id for n in settings.model_names if n in manifest]
