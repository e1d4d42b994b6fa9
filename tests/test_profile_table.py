"""``devtools.profile_table``: py-spy raw stacks -> CPU by component and by step."""

from __future__ import annotations

from pathlib import Path

from devtools import profile_table

RUN = "Thread.run (threading.py:982)"
START = f"{RUN};start_render (worker/start.py:233)"
RAW = "\n".join(
    [
        f"{START};claim (worker/start.py:170);Connection.execute (sqlalchemy/engine/base.py:1) 30",
        f"{START};_start_on_lambda (worker/start.py:300);"
        "BaseClient._make_api_call (botocore/client.py:998);dumps (json/__init__.py:231) 50",
        f"{RUN};poll_batch (worker/poller.py:240);_read (worker/poller.py:280);"
        "Redis.execute_command (redis/client.py:600) 10",
        "<module> (dramatiq:8);import_object (dramatiq/cli.py:100);"
        "_find_and_load (<frozen importlib._bootstrap>:1176) 900",
        "not a stack line",
    ]
)


def test_samples_are_charged_to_their_component_and_step_and_start_up_is_left_out(
    tmp_path: Path,
) -> None:
    (tmp_path / "123.txt").write_text(RAW)
    by_component, by_step = profile_table.parse([tmp_path / "123.txt"])
    assert sum(by_component.values()) == 90  # the import-time samples are not counted
    assert by_component["botocore / boto3 / urllib3 / http.client"] == 50  # json under botocore
    assert by_component["SQLAlchemy / psycopg / SQLModel"] == 30
    assert by_component["redis-py"] == 10
    assert by_step["start: claim (UPDATE .. RETURNING)"] == 30
    assert by_step["start: Lambda start call"] == 50
    assert by_step["poll: progress calls"] == 10


def test_the_table_reads_a_record_folder_and_writes_json(tmp_path: Path, capsys) -> None:
    (tmp_path / "7.txt").write_text(RAW)
    out = tmp_path / "profile.json"
    assert profile_table.main(["table", str(tmp_path), "--renders", "10", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "ms of GIL-held CPU per render" in printed and "start: Lambda start call" in printed
    assert '"step"' in out.read_text()
