"""Files an export ships for its trainer besides the data: verl's reward function and VST's training data config.

The reward function is VST's scorer itself (curation/vst/scoring.py and the modules it imports, the same code the
consistency checks score with), copied beside the data with its imports made relative, so that it runs where the
VST Curator is not installed: verl loads it by path (``custom_reward_function.path``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

import curation.vst.scoring as scoring

REWARD_DIR = "reward"
REWARD_ENTRY = f"{REWARD_DIR}/vst_reward.py"
REWARD_FUNCTION = "compute_score"
SCORER_PACKAGE = "vst_scoring"
VST_DATA_CONFIG = "vst_data.yaml"
_OUR_IMPORT = re.compile(r"^(\s*)from curation\.vst\.(\w+) import", re.MULTILINE)
_ANY_OURS = re.compile(r"^\s*(?:from|import) (?:curation|db|exports|app)\b", re.MULTILINE)

_ENTRY = '''"""verl reward function of this export: VST's reward, 0.5 x accuracy of the answer after </think> + 0.5 x
format (one <think> block, then an answer). Accuracy is by the row's RL modes (extra_info.rl_modes: multiple choice,
relaxed numeric 5%, ANLS, math, VQA, 3D-box IoU), else by the metric its question and answer kind call for
(extra_info.question, extra_info.answer_kind): MRA for a count, distance or size, relaxed 5% for another number,
option letters, 3D-box IoU, ANLS for text. The scorer is the VST Curator's (curation/vst, copied as vst_scoring/
beside this file: the consistency checks score with the same code).

    custom_reward_function.path=<this file>  custom_reward_function.name=compute_score

It finds vst_scoring/ beside itself (by this file's own path), so it runs from any working directory.
Needs numpy, rapidfuzz and scipy (3D boxes); sympy for math answers.
"""

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent / "{package}"
# verl loads this file by path, not as a package: the scorer is loaded by path too, under a name of its own.
_NAME = "{package}_" + hashlib.md5(str(_PACKAGE).encode()).hexdigest()[:12]


def _load_scoring():
    if _NAME not in sys.modules:
        spec = importlib.util.spec_from_file_location(_NAME, _PACKAGE / "__init__.py",
                                                      submodule_search_locations=[str(_PACKAGE)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[_NAME] = module
        spec.loader.exec_module(module)
    return importlib.import_module(_NAME + ".scoring")


scoring = _load_scoring()


def compute_score(data_source, solution_str, ground_truth, extra_info=None):
    """The reward of one response (extra_info: the row's, as this export wrote it)."""
    info = extra_info or {{}}
    # Rows written without answer_kind (another tool's) name their modes in reward_modes.
    modes = info.get("rl_modes") if "answer_kind" in info else info.get("reward_modes")
    return float(scoring.sample_reward(solution_str or "", ground_truth or "", question=info.get("question") or "",
                                       answer_kind=info.get("answer_kind"), rl_modes=list(modes or [])))
'''


@dataclass
class TrainerFiles:
    """What was written for the trainer: the files (for the manifest's file list) and the manifest's "trainer" part."""

    paths: list[Path] = field(default_factory=list)
    manifest: dict = field(default_factory=dict)


def scorer_sources() -> dict[str, str]:
    """The scorer's modules (scoring.py and every curation.vst module it imports, transitively), imports made
    relative: module name -> source text. Raises if the scorer imports anything else of ours (it must stand alone)."""
    folder = Path(scoring.__file__).parent
    todo, out = ["scoring"], {}
    while todo:
        name = todo.pop()
        if name in out:
            continue
        text = (folder / f"{name}.py").read_text(encoding="utf-8")
        todo.extend(m.group(2) for m in _OUR_IMPORT.finditer(text))
        text = _OUR_IMPORT.sub(r"\1from .\2 import", text)
        if _ANY_OURS.search(text):
            raise RuntimeError(f"curation/vst/{name}.py imports project code outside curation.vst: the reward file an "
                               "export ships could not run on its own")
        out[name] = text
    return out


def reward_files() -> dict[str, str]:
    """reward/vst_reward.py (verl's entry: compute_score) and reward/vst_scoring/ (the scorer): path -> text."""
    files = {f"{REWARD_DIR}/{SCORER_PACKAGE}/{name}.py": text for name, text in sorted(scorer_sources().items())}
    files[f"{REWARD_DIR}/{SCORER_PACKAGE}/__init__.py"] = ('"""VST\'s scorer, copied from the VST Curator '
                                                          '(curation/vst) with an export."""\n')
    files[REWARD_ENTRY] = _ENTRY.format(package=SCORER_PACKAGE)
    return files


def vst_data_config(data_dir: Path, subsets: list[str]) -> str:
    """VST's training data config: a YAML list of {ann_path: <subset folder>, data_dir: <export folder>}, one entry
    per folder of Parquet files (VST's trainer globs data_dir/ann_path/*.parquet)."""
    entries = [{"ann_path": s, "data_dir": str(data_dir)} for s in subsets]
    return ("# VST's training data config for this export (its trainer's --data.train_path).\n"
            + yaml.safe_dump(entries, sort_keys=False))


def write_trainer_files(fmt: str, folder: Path, final_dir: Path, data_files: list[Path]) -> TrainerFiles:
    """Write what ``fmt``'s trainer needs besides the data into ``folder`` (an export being written, which will be
    renamed to ``final_dir``): verl gets its reward function, vst-sft its data config."""
    out = TrainerFiles()
    if fmt == "verl":
        for rel, text in reward_files().items():
            path = folder / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            out.paths.append(path)
        out.manifest = {"custom_reward_function": {"path": REWARD_ENTRY, "name": REWARD_FUNCTION},
                        "verl_args": f"custom_reward_function.path={final_dir / REWARD_ENTRY} "
                                     f"custom_reward_function.name={REWARD_FUNCTION}"}
    elif fmt == "vst-sft" and data_files:
        subsets = sorted({p.relative_to(folder).parts[0] for p in data_files if p.suffix == ".parquet"})
        path = folder / VST_DATA_CONFIG
        path.write_text(vst_data_config(final_dir, subsets), encoding="utf-8")
        out.paths.append(path)
        out.manifest = {"vst_data_config": VST_DATA_CONFIG, "subsets": len(subsets)}
    return out
