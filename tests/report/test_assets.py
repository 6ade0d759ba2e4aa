"""``report.assets``: plotly.js inlined in report.html (default) or shared beside it (plotly.min.js)."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
from plotly.offline import get_plotlyjs
from typer.testing import CliRunner

import kallos.cli.app as cli_app
from kallos.config import REPORT_ASSETS, load_config
from kallos.exceptions import ConfigError, KallosError
from kallos.pipeline.results import jsonable
from kallos.report.html import PLOTLY_JS, ReportFrames, render_report, report_assets, write_report
from kallos.report.outputs import write_outputs

SCRIPT_SRC = re.compile(r"<script[^>]*\bsrc\s*=\s*\"([^\"]*)\"", flags=re.I)


def _shared(results: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(results)
    out["config"]["study"]["report"] = {"assets": "shared"}
    return out


def test_inline_is_the_default_and_references_no_script(report_html: str) -> None:
    assert report_html.count(get_plotlyjs()) == 1
    assert SCRIPT_SRC.findall(report_html) == []
    assert PLOTLY_JS not in report_html


def test_shared_writes_the_bundle_beside_the_report(
    study: tuple[dict[str, Any], ReportFrames], tmp_path: Path
) -> None:
    results, frames = study
    target = tmp_path / "run" / "report.html"
    assert write_report(target, results, frames, assets="shared") == target
    assert sorted(p.name for p in target.parent.iterdir()) == [PLOTLY_JS, "report.html"]  # no temp file
    bundle = target.with_name(PLOTLY_JS).read_text(encoding="utf-8")
    assert bundle == get_plotlyjs()
    html = target.read_text(encoding="utf-8")
    assert SCRIPT_SRC.findall(html) == [PLOTLY_JS]  # relative, beside the report
    head = html[: html.index("</head>")]
    assert f'<script type="text/javascript" src="{PLOTLY_JS}"></script>' in head
    assert bundle[:2000] not in html and bundle[-2000:] not in html  # no inlined bundle
    assert len(html.encode()) < 1_000_000 < len(bundle.encode())
    assert html.count("Plotly.newPlot(") == render_report(results, frames).count("Plotly.newPlot(")


def test_inline_and_shared_render_the_same_report(study: tuple[dict[str, Any], ReportFrames]) -> None:
    inline = render_report(*study, assets="inline")
    shared = render_report(*study, assets="shared")
    js = get_plotlyjs()
    inline_rest = inline.replace(f'<script type="text/javascript">{js}</script>', "<PLOTLY>")
    shared_rest = shared.replace(f'<script type="text/javascript" src="{PLOTLY_JS}"></script>', "<PLOTLY>")
    assert inline_rest == shared_rest


def test_the_mode_defaults_to_the_runs_setting(
    study: tuple[dict[str, Any], ReportFrames], tmp_path: Path
) -> None:
    results, frames = study
    assert report_assets(results) == "inline"
    assert report_assets(_shared(results)) == "shared"
    assert report_assets(_shared(results), "inline") == "inline"  # an explicit mode wins
    write_report(tmp_path / "report.html", _shared(results), frames)
    assert (tmp_path / PLOTLY_JS).is_file()
    assert SCRIPT_SRC.findall(render_report(_shared(results), frames, assets="inline")) == []


def test_an_unknown_mode_is_a_config_error(
    study: tuple[dict[str, Any], ReportFrames], tmp_path: Path
) -> None:
    results, frames = study
    with pytest.raises(ConfigError, match=r"report.assets: 'cdn' is not one of inline, shared"):
        write_report(tmp_path / "report.html", results, frames, assets="cdn")
    assert not any(tmp_path.iterdir())


def test_write_outputs_lists_the_shared_bundle(
    study: tuple[dict[str, Any], ReportFrames], tmp_path: Path
) -> None:
    results, frames = jsonable(study[0]), study[1]
    paths = write_outputs(tmp_path / "shared", results, frames, {}, tearsheets=False, assets="shared")
    assert paths["plotly_js"] == tmp_path / "shared" / PLOTLY_JS and paths["plotly_js"].is_file()
    paths = write_outputs(tmp_path / "inline", results, frames, {}, tearsheets=False)
    assert "plotly_js" not in paths and not (tmp_path / "inline" / PLOTLY_JS).exists()


def test_the_setting_is_a_config_key_outside_the_hash() -> None:
    assert REPORT_ASSETS == ("inline", "shared")
    default, shared = load_config(None), load_config(None, {"report.assets": "shared"})
    assert (default.report.assets, shared.report.assets) == ("inline", "shared")
    assert default.config_hash() == shared.config_hash()
    with pytest.raises(ConfigError, match=r"report\.assets"):
        load_config(None, {"report.assets": "cdn"})


# ----------------------------------------------------------------------------- kallos run --report-assets


def test_run_rejects_an_unknown_mode_before_any_work(tmp_path: Path) -> None:
    res = CliRunner().invoke(cli_app.app, ["run", "--out", str(tmp_path / "out"), "--report-assets", "cdn"])
    assert res.exit_code == 2
    assert "--report-assets: 'cdn' is not one of inline, shared" in res.output
    assert "Traceback" not in res.output
    assert not (tmp_path / "out").exists()


def test_run_passes_the_mode_to_the_study_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_execute_study(cfg: Any, *args: Any, **kwargs: Any) -> None:
        seen["assets"] = cfg.report.assets
        raise KallosError("stopped by the test")

    monkeypatch.setattr(cli_app, "execute_study", fake_execute_study)
    monkeypatch.setattr(cli_app, "check_scheduler", lambda *args: None)
    db = f"sqlite:///{tmp_path / 'kallos.db'}"
    args = ["run", "--out", str(tmp_path / "out"), "--database-url", db, "--scheduler", "none"]
    res = CliRunner().invoke(cli_app.app, [*args, "--report-assets", "shared"])
    assert res.exit_code == 2 and "stopped by the test" in res.output
    assert seen == {"assets": "shared"}
    CliRunner().invoke(cli_app.app, args)
    assert seen == {"assets": "inline"}
    res = CliRunner().invoke(cli_app.app, ["run", "--help"], env={"COLUMNS": "200"})
    assert "--report-assets" in res.output
