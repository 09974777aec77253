"""The README's configuration table must list every setting, spelled as the code spells it."""

from pathlib import Path

from related.config import setting_infos

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_documented_with_its_env_var_and_flag():
    missing = [
        info.name
        for info in setting_infos()
        if f"| `{info.name}` | [{info.section}] | `{info.env_var}` | `{info.flag}" not in README
    ]
    assert missing == []


def test_both_commands_are_in_the_readme():
    assert "make demo" in README and "make test" in README
