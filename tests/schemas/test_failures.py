"""The failure-code registry: every code the stages record is in it, and the docs show it."""

import ast
import re
from pathlib import Path

import pytest

import pseudo3d
from pseudo3d.schemas.failures import ANY_STAGE, FAILURE_CODES, failure_code, failure_kind, markdown_table

ROOT = Path(__file__).resolve().parents[2]
SOURCE = Path(pseudo3d.__file__).parent


def _recorded_codes():
    """(file, stage or None when it is a variable, error) of every ``StageError(stage, error, ...)``
    and ``Failure.of(source, stage, error, ...)`` call with a literal error in the package."""
    found = []
    for path in sorted(SOURCE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        constants = {target.id: node.value.value for node in tree.body if isinstance(node, ast.Assign)
                     for target in node.targets if isinstance(target, ast.Name)
                     and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            function = node.func
            name = (function.id if isinstance(function, ast.Name) else
                    f"{function.value.id}.{function.attr}" if isinstance(function, ast.Attribute)
                    and isinstance(function.value, ast.Name) else None)
            position = {"StageError": 0, "Failure.of": 1}.get(name)
            if position is None or len(node.args) < position + 2:
                continue
            stage, error = node.args[position], node.args[position + 1]
            if not (isinstance(error, ast.Constant) and isinstance(error.value, str)):
                continue
            if isinstance(stage, ast.Constant):
                stage = stage.value
            elif isinstance(stage, ast.Name) and stage.id in constants:
                stage = constants[stage.id]
            else:
                stage = None
            found.append((path.relative_to(SOURCE).as_posix(), stage, error.value))
    return found


def test_every_code_a_stage_records_is_registered():
    found = _recorded_codes()
    assert len(found) >= 30  # the scan sees the stages' calls
    registered_errors = {code.error for code in FAILURE_CODES}
    for path, stage, error in found:
        if stage is None:
            assert error in registered_errors, f"{path}: {error} is not registered"
        else:
            failure_code(stage, error)  # raises KeyError naming the pair


def test_kinds_follow_the_taxonomy():
    assert failure_kind("worker", "crashed") == failure_kind("worker", "timeout") == "transient"
    assert failure_kind("reconstruct", "out_of_memory") == failure_kind("probe", "io_error") == "transient"
    assert failure_kind("probe", "not_a_video") == failure_kind("track", "no_face") == "permanent"
    assert failure_kind("qa", "av_offset_s") == failure_kind("encode", "internal_error") == "permanent"
    with pytest.raises(KeyError, match="probe/no_such_code is not registered"):
        failure_kind("probe", "no_such_code")
    assert len({(code.stage, code.error) for code in FAILURE_CODES}) == len(FAILURE_CODES)


def test_the_data_contract_shows_the_registry():
    assert markdown_table() in (ROOT / "docs" / "data-contract.md").read_text()


def test_every_code_the_hardening_page_names_is_registered():
    text = (ROOT / "docs" / "hardening.md").read_text()
    named = set(re.findall(r"`([a-z]+)/([a-z_]+)`", text)) | set(re.findall(r"`([a-z]+)`/`([a-z_]+)`", text))
    assert len(named) >= 15
    for stage, error in named:
        failure_code(stage, error)
    stages = {code.stage for code in FAILURE_CODES} - {ANY_STAGE}
    assert {stage for stage, _ in named} <= stages
