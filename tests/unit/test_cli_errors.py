"""The `spe` CLI fails in one line with a documented exit code, never a traceback: every
user-side command against a service that is down, bad local input, bad settings, a
development home without an issuer key; and what it prints for people and scripts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
import pytest
import requests
from click.testing import CliRunner, Result

from spe.cli import errors
from spe.cli.catalog_view import bounds
from spe.cli.follow import JobCount, Outage
from spe.cli.main import main
from spe.cli.runs import _gain
from tests.helpers import free_port


def spe(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env={"SPE_CLI_RETRIES": "0", **(env or {})})


def _sample(param: click.Parameter) -> list[str]:
    """Arguments that satisfy a required parameter without a server."""
    if isinstance(param.type, click.Choice):
        value = str(param.type.choices[0])
    elif isinstance(param.type, click.types.FloatParamType | click.types.IntParamType):
        value = "1"
    else:
        value = "a value long enough for any minimum length"
    return [value] if isinstance(param, click.Argument) else [param.opts[0], value]


# commands whose shortest valid call needs more than their required parameters
VALID_CALLS = {("task", "submit"): ("--image", "alpine", "--", "true")}


def user_side_commands() -> Iterator[tuple[str, ...]]:
    """Every command under a group that talks to the service (it has --url), with
    arguments for its required parameters: new command groups are swept too."""
    ctx = click.Context(main)
    for name in main.list_commands(ctx):
        group = main.get_command(ctx, name)
        if not isinstance(group, click.Group) or "url" not in {p.name for p in group.params}:
            continue
        yield from _leaves(group, (name,))


def _leaves(group: click.Group, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    ctx = click.Context(group)
    if getattr(group, "invoke_without_command", False):
        yield path
    for sub in group.list_commands(ctx):
        command = group.get_command(ctx, sub)
        if isinstance(command, click.Group):
            yield from _leaves(command, (*path, sub))
        elif command is not None:
            args = [a for p in command.params if p.required for a in _sample(p)]
            yield (*path, sub, *VALID_CALLS.get((*path, sub), args))


COMMANDS = list(user_side_commands())


def _name(command: tuple[str, ...]) -> str:
    words = []
    for word in command:
        if word.startswith("-") or " " in word:
            break
        words.append(word)
    return " ".join(words)


def test_the_sweep_covers_the_user_side_commands() -> None:
    names = {" ".join(c[:3]) for c in COMMANDS}
    for expected in ("run submit", "run list", "run status", "run logs", "run cancel",
                     "run workflows", "run workflows show", "data ls", "release list",
                     "release show", "release download", "release revoke", "task submit",
                     "task list", "task get", "task cancel"):
        assert any(n.startswith(expected) for n in names), expected


@pytest.mark.parametrize("command", COMMANDS, ids=_name)
def test_every_command_against_a_stopped_server_exits_3_in_one_line(
        command: tuple[str, ...]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = spe(*command, env={"SPE_URL": url, "SPE_TOKEN": "t"})
    assert result.exit_code == errors.UNREACHABLE, (result.output, result.exception)
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "cannot reach" in result.stderr


@pytest.mark.parametrize("command", COMMANDS, ids=_name)
@pytest.mark.parametrize("as_json", [False, True])
def test_every_command_with_a_bad_url_is_a_usage_error(command: tuple[str, ...],
                                                        as_json: bool) -> None:
    result = spe(*command, *(["--json"] if as_json and _takes_json(command) else []),
                 env={"SPE_URL": "127.0.0.1:8080", "SPE_TOKEN": "t"})
    assert result.exit_code == errors.USAGE, result.output
    assert "Traceback" not in result.output and "SPE_URL" in result.stderr


def _takes_json(command: tuple[str, ...]) -> bool:
    return "--json" in spe(*command[:3], "--help").output


def test_a_malformed_params_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "params.json"
    bad.write_text('{"seconds": 1,', encoding="utf-8")
    result = spe("run", "submit", "sleepy", "--params-file", str(bad),
                 env={"SPE_URL": f"http://127.0.0.1:{free_port()}", "SPE_TOKEN": "t"})
    assert result.exit_code == errors.USAGE
    assert result.stderr.strip().count("\n") == 0
    assert "not valid JSON (line 1" in result.stderr


def test_a_params_file_holding_a_list_is_refused(tmp_path: Path) -> None:
    listed = tmp_path / "params.json"
    listed.write_text("[1, 2]", encoding="utf-8")
    result = spe("run", "submit", "sleepy", "--params-file", str(listed))
    assert result.exit_code == errors.USAGE and "JSON object" in result.stderr


def test_settings_errors_name_the_environment_variable_and_no_url(tmp_path: Path) -> None:
    result = spe("dev", "token", "--user", "alice",
                 env={"SPE_PORT": "eighty", "SPE_HOME": str(tmp_path)})
    assert result.exit_code == errors.FAILURE
    assert "SPE_PORT" in result.stderr
    assert "http" not in result.stderr and "eighty" not in result.stderr


def test_dev_token_without_an_issuer_key_says_so_and_makes_none(tmp_path: Path) -> None:
    result = spe("dev", "token", "--user", "alice", env={"SPE_HOME": str(tmp_path)})
    assert result.exit_code == errors.FAILURE
    assert "no development issuer key" in result.stderr and str(tmp_path) in result.stderr
    assert not (tmp_path / "dev-issuer" / "key.pem").exists()
    assert result.stdout == ""


def test_version_and_short_help() -> None:
    version = spe("--version")
    assert version.exit_code == 0 and version.output.startswith("spe ")
    for args in (["-h"], ["run", "-h"], ["run", "list", "-h"]):
        assert spe(*args).output.startswith("Usage:"), args


@pytest.mark.parametrize(("exc", "code"), [
    (requests.ConnectionError("refused"), errors.UNREACHABLE),
    (requests.Timeout("slow"), errors.UNREACHABLE),
    (requests.exceptions.MissingSchema("no scheme"), errors.USAGE),
    (KeyboardInterrupt(), errors.INTERRUPTED),
    (FileNotFoundError(2, "No such file or directory", "x.json"), errors.FAILURE),
    (RuntimeError("boom"), errors.FAILURE),
])
def test_exceptions_map_to_documented_exit_codes(exc: BaseException, code: int) -> None:
    error = errors.translate(exc)
    assert error is not None and error.exit_code == code
    assert "\n" not in error.message


def test_unexpected_errors_keep_their_trace_with_spe_debug(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(errors.DEBUG_ENV, "1")
    with pytest.raises(RuntimeError), errors.handled():
        raise RuntimeError("boom")


def test_job_count_waits_for_the_first_job_then_says_when_the_total_grew() -> None:
    jobs = JobCount()
    assert jobs.update([]) is None and "None" not in jobs.label()
    assert jobs.label() == "waiting for the engine's first job"
    assert jobs.update([{"exit_code": 0}, {}]) is None
    assert jobs.label() == "1/2 jobs"
    assert jobs.update([{"exit_code": 0}, {"exit_code": 0}, {"exit_code": 1}]) == 2
    assert jobs.label() == "2/3 jobs, 1 failed"


def test_job_count_shows_the_planned_total_before_the_jobs_are_seen() -> None:
    jobs = JobCount()
    assert jobs.update([], planned=5) is None
    assert jobs.label() == "0/5 jobs"
    assert jobs.update([{"exit_code": 0}, {}]) is None  # the plan stays when not re-read
    assert jobs.label() == "1/5 jobs"
    assert jobs.update([{"exit_code": 0}] * 2, planned=7) == 5  # a checkpoint grew it
    assert jobs.label() == "2/7 jobs"
    assert jobs.update([{"exit_code": 0}] * 8, planned=7) == 7  # more seen than planned
    assert jobs.label() == "8/8 jobs"


def test_a_later_log_tail_adds_only_the_new_text() -> None:
    assert _gain("a\nb\n", "a\nb\nc\n") == "c\n"
    assert _gain("a\nb\nc\n", "b\nc\nd\n") == "d\n"  # the tail moved past "a"
    assert _gain("a\nb\n", "x\ny\n") is None  # more was written than a tail holds


def test_schema_bounds_in_words() -> None:
    assert bounds({"minimum": 1, "maximum": 4}) == ">= 1, <= 4"
    assert bounds({"enum": ["a", "b"], "maxLength": 3}) == 'length <= 3, one of "a", "b"'


def test_an_outage_is_waited_for_until_patience_runs_out() -> None:
    now = [0.0]
    outage = Outage("r1", patience=10, clock=lambda: now[0])
    with pytest.raises(errors.ApiError):
        outage.lost(errors.ApiError(404, "no such run"))  # not an outage
    outage.lost(requests.ConnectionError("refused"))
    now[0] = 9
    outage.lost(errors.ApiError(503, "restarting"))
    assert outage.back() and not outage.back()
    outage.lost(requests.ConnectionError("refused"))
    now[0] = 20
    with pytest.raises(errors.Unreachable, match="spe run status --wait r1"):
        outage.lost(requests.ConnectionError("refused"))
