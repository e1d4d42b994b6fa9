"""Documentation that must not drift from the code."""

from pathlib import Path

from shared.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_every_setting_is_documented_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    missing = [name.upper() for name in Settings.model_fields if f"`{name.upper()}`" not in readme]
    assert missing == [], f"document these settings in README.md: {missing}"


def test_readme_has_exactly_the_two_setup_commands():
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_architecture_maps_every_module():
    """docs/architecture.md is the entry point: its file map names every module (packages of
    the dev tools by their folder)."""
    doc = (ROOT / "docs" / "architecture.md").read_text()
    missing = []
    for folder in ("shared", "worker", "worker/middleware", "scripts", "devtools"):
        for path in sorted((ROOT / folder).glob("*.py")):
            if path.name != "__init__.py" and path.stem not in doc:
                missing.append(str(path.relative_to(ROOT)))
    for package in ("devtools/emulator", "devtools/bench", "tests/inprocess"):
        if f"{package.split('/')[-1]}/" not in doc:
            missing.append(package)
    assert missing == [], f"add these to the file map in docs/architecture.md: {missing}"
