"""The command line's help reads as prose: paragraphs are wrapped to the terminal, not to the docstring's lines."""

from typer.testing import CliRunner

from pipelines.cli import app


def _help(*args: str) -> str:
    result = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "120", "NO_COLOR": "1"}, terminal_width=120)
    assert result.exit_code == 0, result.output
    return result.output


def test_a_later_paragraph_of_a_command_docstring_is_reflowed():
    # publish's second paragraph breaks after "the reason the" in its docstring; at 120 columns it fits on two lines.
    text = " ".join(_help("publish").split())
    assert "(the reason the normalizer would dead-letter it with)" in text
    lines = [line.strip() for line in _help("publish").splitlines()]
    assert not any(line.endswith("(the reason the") for line in lines)


def test_commands_of_sub_groups_are_reflowed_too():
    lines = [line.strip() for line in _help("label").splitlines()]
    assert any("2: bad input; 3: Kafka unreachable" in line for line in lines)
