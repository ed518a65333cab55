"""One offline stack: `Pulumi.<stack>.yaml` read once, its seed and brought key files resolved once,
and one PKI derivation shared by the CLI commands, the rehearsal, `verify` and the tests.

Nothing here writes the environment: the seed and brought keys travel as values, into the mock
engine's config, never into `os.environ` where child processes would inherit them.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pki import PkiError, PkiSpec, Seed, start_deriving, stop_deriving
from slbmtls.clock import ClockError, today
from slbmtls.config import (
    NAMESPACE,
    SECRET_KEYS,
    SEED_KEY,
    ConfigError,
    StackConfig,
    StackSecrets,
    parse_stack_config,
    seed_of,
)
from slbmtls.stackfile import StackFile, load_stack, resolve_file_secret, resolve_seed

if TYPE_CHECKING:
    from pki import PkiMaterial
    from slbmtls.plan import Plan

PROJECT_DIR = Path(__file__).resolve().parent.parent  # where Pulumi.yaml lives, unless told otherwise

# brought server certificate secrets the stack file cannot show: (key, env var naming a file)
_FILE_SECRETS = (("serverPrivateKey", "SERVER_PRIVATE_KEY_FILE"),
                 ("serverPrivateKeyPassphrase", "SERVER_PRIVATE_KEY_PASSPHRASE_FILE"))


class UserError(Exception):
    """A problem the user fixes; the CLI prints it without a traceback and exits 2."""


@dataclass(frozen=True)
class Planned:
    """One run of the real program under the mock engine, with the config and material it used."""

    plan: Plan
    config: StackConfig
    material: PkiMaterial


class OfflineStack:
    """A stack as the offline tools see it. Loading resolves the seed (PKI_SEED, the pulumi CLI, or
    a throwaway one where allowed); `plan()` and `material` derive at most once each."""

    def __init__(self, stack_file: StackFile, seed_hex: str, seed_source: str,
                 file_secrets: dict[str, str]) -> None:
        self.stack_file = stack_file
        self.seed_hex = seed_hex
        self.seed_source = seed_source
        # A secret written in plain text in the stack file reaches the program unmarked, as the
        # engine would hand it over, so it is refused exactly as under `pulumi up`.
        self.seed_in_plain_text = SEED_KEY in stack_file.values
        self._file_secrets = file_secrets
        self._planned: Planned | None = None

    @classmethod
    def load(cls, stack: str, *, project_dir: Path = PROJECT_DIR, ephemeral_ok: bool = False,
             with_server_key: bool = True) -> OfflineStack:
        stack_file = load_stack(project_dir, stack)
        if SEED_KEY in stack_file.values:
            seed_hex, source = str(stack_file.values[SEED_KEY]), "stack file (plain text)"
        else:
            seed_hex, source = resolve_seed(stack_file, allow_ephemeral=ephemeral_ok)
        secrets: dict[str, str] = {}
        for key, env_var in _FILE_SECRETS if with_server_key else ():
            if f"{NAMESPACE}:{key}" in stack_file.values:
                continue  # in plain text in the stack file: the program refuses it from there
            value = resolve_file_secret(stack_file, key, env_var)
            if value is not None:
                secrets[key] = value.strip() if key.endswith("Passphrase") else value
        return cls(stack_file, seed_hex, source, secrets)

    @property
    def name(self) -> str:
        return self.stack_file.stack

    @property
    def ephemeral(self) -> bool:
        return self.seed_source == "ephemeral"

    # -- without the engine (bundle): config and material straight from the stack file

    @cached_property
    def config(self) -> StackConfig:
        """The validated config. Without the engine a brought server certificate is left out: its
        key is a Pulumi secret that bundles never need (the plan reads it, see `plan()`)."""
        if self._planned is not None:
            return self._planned.config
        return self._config_from_file()

    def _config_from_file(self) -> StackConfig:
        raw = self.stack_file.namespace()
        raw.pop("serverCertificate", None)
        if "serverPrivateKey" in raw:  # the program's own message; its brought certificate is not read here
            raise ConfigError([f"{NAMESPACE}:serverPrivateKey: stored in plain text; remove it and store it "
                               "encrypted with: pulumi config set --secret serverPrivateKey < server.key"])
        for key in SECRET_KEYS:
            raw.pop(key, None)
        return parse_stack_config(raw, self.stack_file.values.get("alicloud:region"),
                                  project=self.stack_file.project, stack=self.name, secrets=self._secrets())

    @property
    def seed(self) -> Seed:
        return seed_of(self._secrets())

    @cached_property
    def material(self) -> PkiMaterial:
        """The CA, server and client material: the plan's own when a plan ran, else derived here."""
        if self._planned is not None:
            return self._planned.material
        config = self.config  # first: a bad seed is reported among the config's problems, as the program does
        return self.material_for(config.pki)

    def material_for(self, spec: PkiSpec) -> PkiMaterial:
        """Other material from the same seed (e.g. the CA epoch before the last revocation)."""
        from pki.material import build_material

        return build_material(self.seed, spec, today=today())

    def previous_epoch(self, spec: PkiSpec) -> PkiSpec | None:
        """The PKI as it was one CA epoch ago: before the last revocation, else the previous CA
        generation; None at the first epoch."""
        if spec.revocations:
            last = spec.revocations[-1]
            # a revoked client that left `clients` still had a bundle from that epoch
            clients = spec.clients + ((last.client,) if last.client is not None else ())
            return replace(spec, revocations=spec.revocations[:-1], clients=clients)
        if spec.ca_generation > 1:
            return replace(spec, ca_generation=spec.ca_generation - 1)
        return None

    # -- through the engine: the real program

    def plan(self, overrides: dict[str, Any] | None = None) -> Planned:
        """Run the program under the mock engine. `overrides` replace `slb-mtls:*` values (short or
        full keys, plain values), e.g. to plan a what-if; the plan without them is kept and shared."""
        if not overrides and self._planned is not None:
            return self._planned
        planned = self._run(overrides or {})
        if not overrides:
            self._planned = planned
        return planned

    def _run(self, overrides: dict[str, Any]) -> Planned:
        try:
            if not overrides and self._start_deriving():
                # The program loads the provider SDK (~0.25 s) only once its material is ready, and
                # the helper would idle meanwhile: load it now, while the helper works.
                import slbmtls.infra  # noqa: F401
            return self._run_program(overrides)
        finally:
            stop_deriving()  # a no-op once the program's derivation finished the keys

    def _start_deriving(self) -> bool:
        """Put the second core to work on the stack's RSA keys and EC clients while Pulumi imports
        (~1 s), if there are enough. The program derives its own material; what is started here
        only fills caches, so a config it will refuse just means no head start."""
        with contextlib.suppress(ConfigError, PkiError, ClockError):
            return start_deriving(self.seed, self._config_from_file().pki)
        return False

    def _run_program(self, overrides: dict[str, Any]) -> Planned:
        import pulumi

        from slbmtls import plan as planner
        from slbmtls import program

        config = self.stack_file.engine_config()
        for key, value in overrides.items():
            config[key if ":" in key else f"{NAMESPACE}:{key}"] = value if isinstance(value, str) else json.dumps(value)
        config[SEED_KEY] = self.seed_hex
        secret_keys = [] if self.seed_in_plain_text else [SEED_KEY]
        for key, value in self._file_secrets.items():
            config[f"{NAMESPACE}:{key}"] = value
            secret_keys.append(f"{NAMESPACE}:{key}")
        prepared: list[tuple[StackConfig, PkiMaterial]] = []

        def program_fn() -> dict[str, Any]:
            prepared.append(program.prepare())  # keep what the program derived: no second derivation
            return program.declare(*prepared[-1])

        try:
            plan = planner.run(self.stack_file.project, self.name, config, secret_keys, program_fn=program_fn)
        except pulumi.RunError as exc:
            raise UserError(str(exc)) from None
        return Planned(plan, *prepared[-1])

    def _secrets(self) -> StackSecrets:
        return StackSecrets(seed=self.seed_hex, seed_is_secret=not self.seed_in_plain_text)
