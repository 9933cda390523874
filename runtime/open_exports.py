"""The one place that decides how export folders are served: a routed session per shared base, a Translator per other export.

Every front end (`modmt-translate`, `modmt serve`, the Ray job, the benchmarks) hands its paths to
`group_exports` and opens what it returns with `open_exports`, so "standalone or routed" is decided
here only. The rule:
- a shared base (`modmt-export --all-directions --shared-base BASE`) stands for every direction in
  its directions/ folder, and all of them route through the base's routed graph;
- a direction exported onto a shared base routes when it can (its base has a routed graph and the
  direction merges every adapted module, i.e. no --targets); directions on one base share a session;
- anything else (a folded standalone export, a direction that cannot route) is opened on its own,
  its deltas folded into its weights.
Manifests are only read here (their files checked for size); the translators check them in full.
"""
import json
from dataclasses import dataclass
from pathlib import Path

from modmt.runtime.errors import ModmtError
from modmt.runtime.manifest import MANIFEST, read_manifest
from modmt.runtime.shared_fold import BASE_KIND, DIRECTION_KIND

DIRECTIONS_FOLDER = "directions"  # where `modmt-export --all-directions` puts a base's directions


def is_shared_base(path) -> bool:
    manifest = Path(path) / MANIFEST
    try:
        return manifest.is_file() and json.loads(manifest.read_text(encoding="utf-8")).get("kind") == BASE_KIND
    except ValueError:
        return False  # a corrupt manifest is reported where the export is read


def direction_exports(paths) -> list[Path]:
    """Direction folders from paths that are direction exports or shared bases (their directions/)."""
    found = []
    for path in map(Path, paths):
        if is_shared_base(path):
            held = sorted(p.parent for p in (path / DIRECTIONS_FOLDER).glob(f"*/{MANIFEST}"))
            if not held:
                raise ModmtError(f"the shared base {path} holds no directions; export them with `modmt-export "
                                 f"--all-directions --pool POOL --shared-base {path}`")
            found += held
        else:
            found.append(path)
    return found


def routed_base(direction: Path, manifest: dict) -> Path | None:
    """The shared base a direction export (with its manifest) can route through, or None (not on a shared
    base, --targets given, or a base without a routed graph). An unreadable base manifest gives None: it is
    reported where the base is read."""
    try:
        if manifest.get("kind") != DIRECTION_KIND or not manifest.get("adapters") or manifest.get("targets"):
            return None
        base = (direction / manifest["base"]).resolve()
        return base if "routed" in json.loads((base / MANIFEST).read_text(encoding="utf-8")) else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


@dataclass(frozen=True)
class ExportGroups:
    """What a list of export paths is: direction exports grouped by the shared base they route through,
    and the exports that are opened on their own."""
    routed: dict[Path, list[Path]]   # shared base -> its direction exports given (each routes)
    standalone: list[Path]
    bases_given: bool                # a shared base itself was among the paths

    @property
    def one_session(self) -> bool:
        """Everything given routes through one base: one RoutedTranslator serves it all."""
        return len(self.routed) == 1 and not self.standalone

    @property
    def mixed_input(self) -> bool:
        """One session holding a base or several directions: a file's lines say each line's direction."""
        return self.one_session and (self.bases_given or len(next(iter(self.routed.values()))) > 1)

    def directions(self) -> list[Path]:
        return [d for dirs in self.routed.values() for d in dirs] + list(self.standalone)


def group_exports(paths) -> ExportGroups:
    """Decide, once, how each path is served (the rule is in this module's docstring)."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise ModmtError("no export given; pass an export folder made by `modmt-export`")
    routed, standalone, bases_given = {}, [], False
    for path in paths:
        if is_shared_base(path):  # a base given routes all it holds; RoutedTranslator says why it cannot
            bases_given = True
            routed.setdefault(path.resolve(), []).extend(direction_exports([path]))
            continue
        # A missing or corrupt export: its one-line error here, before anything loads.
        base = routed_base(path, read_manifest(path, "size"))
        if base is None:
            standalone.append(path)
        else:
            routed.setdefault(base, []).append(path)
    return ExportGroups(routed, standalone, bases_given)


def open_exports(groups: ExportGroups, provider: str = "auto", threads: int | None = None,
                 max_input_tokens: int = 512, verify: str = "full", fixed_weights: bool = False) -> list:
    """The translators that serve `groups`: one RoutedTranslator per shared base, one Translator per other export.

    fixed_weights: the caller translates one direction with its exported weights (modmt-translate on
    plain lines), so a lone direction is folded into its base's weights instead of routed: no side
    path per step, the speed of a standalone export."""
    from modmt.runtime.routed_translator import RoutedTranslator
    from modmt.runtime.translator import Translator

    routed, standalone = list(groups.routed.values()), list(groups.standalone)
    if fixed_weights and len(groups.directions()) == 1 and routed and not groups.bases_given:
        routed, standalone = [], routed[0]
    return ([RoutedTranslator(dirs, provider, threads, verify=verify, max_input_tokens=max_input_tokens)
             for dirs in routed]
            + [Translator(path, provider, threads, verify=verify, max_input_tokens=max_input_tokens)
               for path in standalone])
