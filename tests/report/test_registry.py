"""One registry of sections (kallos.report.html.SECTIONS), one first-screen writer, one loop."""

from __future__ import annotations

import copy
import dataclasses
import re
from typing import Any

import plotly.graph_objects as go
import pytest
from markupsafe import Markup
from plotly.offline import get_plotlyjs

import kallos.report.html as report_html_module
import kallos.report.sections as sections
import kallos.report.verdicts as verdicts
from kallos.report.blocks import Figure, ReportFrames, Section, SectionContext, SectionSpec, Text
from kallos.report.html import SECTIONS, build_sections, render_report, section_context
from kallos.report.summary import summary_section

STAGE_KEYS = (
    "primary",
    "calibration",
    "effects",
    "verdicts",
    "sharpe",
    "trials",
    "overfitting",
    "regimes",
    "quarters",
    "universe",
)
ALWAYS_BUILT = {
    "summary",
    "configuration",
    "data",
    "cumulative",
    "drawdowns",
    "rolling",
    "metrics",
    "weights",
    "turnover",
    "fallbacks",
    "tests",
    "forecasts",
    "residuals",
}


def _evaluation_fragments() -> dict[str, Any]:
    fig = go.Figure(go.Scatter(x=[1, 2], y=[3, 4])).to_html(
        full_html=False, include_plotlyjs=False, div_id="fc-x"
    )
    return {
        "title": "Forecast evaluation",
        "figures": {"x": fig},
        "tables": {"dm": '<table id="fc-dm"></table>'},
    }


def _bare(results: dict[str, Any]) -> dict[str, Any]:
    bare = copy.deepcopy(results)
    for key in STAGE_KEYS:
        bare.pop(key)
    return bare


def _body_ids(html: str) -> list[str]:
    main = re.search(r"<main>.*</main>", html.replace(get_plotlyjs(), ""), flags=re.S).group(0)
    return re.findall(r'<section id="([^"]+)"', main)


def _toc(html: str) -> list[tuple[str, str]]:
    nav = re.search(r'<nav class="toc".*?</nav>', html, flags=re.S).group(0)
    return re.findall(r'<li><a href="#([^"]+)">(.*?)</a></li>', nav)


@pytest.fixture(scope="module", params=["full", "bare", "with-evaluation"])
def variant(request: pytest.FixtureRequest, study: tuple[dict[str, Any], ReportFrames]) -> dict[str, Any]:
    results, frames = study
    kwargs: dict[str, Any] = {}
    if request.param == "bare":
        results = _bare(results)
    if request.param == "with-evaluation":
        kwargs["forecast_evaluation"] = _evaluation_fragments()
    ctx = section_context(results, frames, forecast_evaluation=kwargs.get("forecast_evaluation"))
    return {
        "name": request.param,
        "built": [s.id for s in build_sections(ctx)],
        "html": render_report(results, frames, **kwargs),
    }


def test_every_registered_section_is_in_the_toc_iff_built(variant: dict[str, Any]) -> None:
    toc = dict(_toc(variant["html"]))
    for sid, spec in SECTIONS.items():
        assert (sid in toc) == (sid in variant["built"]), sid
        if sid in toc:
            assert toc[sid] == spec.label
    assert ALWAYS_BUILT <= set(variant["built"])
    expected_optional = {
        "full": {"verdicts", "calibration", "universe", "sharpe", "regimes", "quarters"},
        "bare": set(),
        "with-evaluation": {"verdicts", "calibration", "universe", "sharpe", "regimes", "quarters"}
        | {"forecast-evaluation"},
    }[variant["name"]]
    assert set(variant["built"]) - ALWAYS_BUILT == expected_optional


def test_the_registry_is_the_only_source_of_sections(variant: dict[str, Any]) -> None:
    """The page's sections, and its table of contents, are the registry's built entries, in order."""
    html = variant["html"]
    body = _body_ids(html)
    assert body == variant["built"]
    assert [sid for sid, _ in _toc(html)] == body
    assert body == [sid for sid in SECTIONS if sid in body]  # registry order
    main = re.search(r"<main>.*</main>", html, flags=re.S).group(0)
    headings = re.findall(r"<h2>(.*?)</h2>", main)
    assert headings == [SECTIONS[sid].title for sid in body]


def test_builders_agree_with_their_registry_entry(study: tuple[dict[str, Any], ReportFrames]) -> None:
    results, frames = study
    ctx = section_context(results, frames, forecast_evaluation=_evaluation_fragments())
    for sid, spec in SECTIONS.items():
        section = spec.build(ctx)
        if section is not None:
            assert isinstance(section, Section)
            assert (section.id, section.title) == (sid, spec.title)


def test_adding_a_section_is_one_builder_and_one_registry_line(
    study: tuple[dict[str, Any], ReportFrames], monkeypatch: pytest.MonkeyPatch
) -> None:
    def extra(ctx: SectionContext) -> Section:
        return Section("extra", "ignored", [Text(Markup("{} variants").format(len(ctx.variants)))])

    registry = dict(SECTIONS)
    entries = list(registry.items())
    at = [sid for sid, _ in entries].index("metrics") + 1
    entries.insert(at, ("extra", SectionSpec("An extra section", extra)))
    monkeypatch.setattr(report_html_module, "SECTIONS", dict(entries))
    html = render_report(*study)
    body = _body_ids(html)
    assert body[body.index("metrics") + 1] == "extra"
    assert ("extra", "An extra section") in _toc(html)
    section = re.search(r'<section id="extra">.*?</section>', html, flags=re.S).group(0)
    assert "<h2>An extra section</h2>" in section and "<p>8 variants</p>" in section


def test_a_builder_returning_none_drops_section_and_toc_entry(
    study: tuple[dict[str, Any], ReportFrames], monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = dict(SECTIONS)
    registry["weights"] = dataclasses.replace(registry["weights"], build=lambda ctx: None)
    monkeypatch.setattr(report_html_module, "SECTIONS", registry)
    html = render_report(*study)
    assert 'id="weights"' not in html.replace(get_plotlyjs(), "")
    assert 'href="#weights"' not in html


def test_forecast_evaluation_from_the_typed_object(study: tuple[dict[str, Any], ReportFrames]) -> None:
    """The section is a registered builder fed from the context, from the typed evaluation too."""
    from kallos.evaluation.forecast_metrics import forecast_evaluation

    results, frames = study
    evaluation = forecast_evaluation(frames.forecasts)
    html = render_report(results, frames, forecast_evaluation=evaluation).replace(get_plotlyjs(), "")
    body = re.search(r'<section id="forecast-evaluation">.*?</section>', html, flags=re.S).group(0)
    assert "<h2>Forecast evaluation</h2>" in body
    assert 'id="fc-r2_oos"' in body and "Diebold-Mariano" in body


def test_blocks_render_generically(study: tuple[dict[str, Any], ReportFrames]) -> None:
    """A figure without data renders the placeholder; an empty caption renders no figcaption."""
    results, frames = study
    empty = ReportFrames(
        frames.returns_net, frames.returns_gross, frames.turnover, frames.weights.iloc[0:0], frames.forecasts
    )
    html = render_report(results, empty).replace(get_plotlyjs(), "")
    weights = re.search(r'<section id="weights">.*?</section>', html, flags=re.S).group(0)
    assert '<p class="empty">No data for this chart.</p>' in weights
    fe = render_report(results, frames, forecast_evaluation=_evaluation_fragments())
    body = re.search(r'<section id="forecast-evaluation">.*?</section>', fe, flags=re.S).group(0)
    assert "<figcaption>" not in body
    assert Figure(None, "").kind == "figure"


# ----------------------------------------------------------------------------- one headline writer


def test_one_function_writes_the_first_screen(study: tuple[dict[str, Any], ReportFrames]) -> None:
    assert SECTIONS["summary"].build is summary_section
    assert next(iter(SECTIONS)) == "summary"
    for module, name in ((verdicts, "answer"), (sections, "headline"), (report_html_module, "_summary")):
        assert not hasattr(module, name), f"{module.__name__}.{name} is a second first-screen writer"
    results, frames = study
    section = summary_section(section_context(results, frames))
    kinds = [b.kind for b in section.blocks]
    assert kinds == ["headline", "text"]


def test_no_first_screen_sentence_is_written_twice(report_html: str) -> None:
    summary = re.search(r'<section id="summary".*?</section>', report_html, flags=re.S).group(0)
    items = re.findall(r"<li>(.*?)</li>", summary, flags=re.S)
    paragraph = re.search(r"</div>\s*<p>(.*?)</p>", summary, flags=re.S).group(1)
    sentences = [s.strip() for s in re.split(r"(?<=\.) (?=[A-Z])", paragraph) if s.strip()]
    assert len(items) == 6 and len(sentences) == 5  # coverage, 2 rankings, the battery (2)
    for text in [*items, *sentences]:
        assert summary.count(text) == 1, text
    # the tested verdict says who beats whom; the paragraph only ranks the point estimates
    assert "beats" in items[0]
    assert not any("beats" in s for s in sentences)


def test_without_a_headline_the_ranking_judges_the_benchmarks(
    study: tuple[dict[str, Any], ReportFrames],
) -> None:
    results, frames = study
    html = render_report(_bare(results), frames)
    summary = re.search(r'<section id="summary".*?</section>', html, flags=re.S).group(0)
    assert 'class="headline"' not in summary
    assert "The best forecast-driven variant beats both benchmarks" in summary
