"""`nas report`: one document from a search directory, a retrain directory or both, written as
report.md (plots beside it), report.html (plots embedded) and, with --pdf, report.pdf.

The document is a list of plain blocks (heading, paragraph, table, image, code); each output
format is one small renderer of that list."""
from __future__ import annotations

import base64
import datetime
import html
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..budget import Budget, Cost, layer_costs
from ..errors import UserError
from ..records import RetrainResult, Winner, read_metrics
from ..spaces import Architecture
from ..spaces.space import edges_note
from . import plots
from .console import human


@dataclass
class Block:
    kind: str  # h1 | h2 | p | table | image | code
    text: str = ""
    headers: list = field(default_factory=list)
    rows: list = field(default_factory=list)
    path: Path | None = None
    half: bool = False  # an image that may sit beside the next one


# --- reading run directories ---------------------------------------------------------------

@dataclass
class Runs:
    search: Path | None = None
    retrain: Path | None = None


def find_runs(dirs: list[str]) -> Runs:
    runs = Runs()
    for d in map(Path, dirs):
        if not d.is_dir():
            raise UserError(f"not a directory: {d}")
        found = False
        if (d / "trials.jsonl").exists() and (d / "search.json").exists():
            runs.search, found = d, True
            if runs.retrain is None and (d / "retrain" / "result.json").exists():
                runs.retrain = d / "retrain"
        if (d / "result.json").exists() and (d / "metrics.csv").exists():
            runs.retrain, found = d, True
        if not found:
            raise UserError(f"{d} holds neither a search (trials.jsonl, search.json) nor a retrain (result.json, metrics.csv)")
    return runs


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"cannot read {path}: {e}") from None


# --- the document --------------------------------------------------------------------------

def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def _architecture_blocks(arch: Architecture, budget: Budget | None, images: Path) -> list[Block]:
    rows = []
    costs = layer_costs(arch)
    stem = costs[0]
    rows.append(["stem", "conv", arch.stem_width, 1, arch.stem_kernel, f"{stem.cost.params:,}", human(stem.cost.macs)])
    for i, stage in enumerate(arch.stages):
        c = sum((r.cost for r in costs if r.name.startswith(f"stages.{i}.")), Cost(0, 0))
        down = "" if stage.downsample == "none" else f" ({stage.downsample})"
        rows.append([f"stage {i + 1}{down}", stage.block, stage.width, stage.depth, stage.knobs.get("kernel", "-"),
                     f"{c.params:,}", human(c.macs)])
    head = costs[-1]
    rows.append(["head", f"pool {arch.head_pool}" + (f" + fc {arch.head_hidden}" if arch.head_hidden else ""),
                 arch.num_classes, 1, "-", f"{head.cost.params:,}", human(head.cost.macs)])
    total = sum((r.cost for r in costs), Cost(0, 0))
    rows.append(["total", "", "", sum(s.depth for s in arch.stages), "", f"{total.params:,}", human(total.macs)])
    plots.plot_architecture(arch, images / "architecture.png")
    use = f" ({100 * budget.use(total):.1f}% of the budget)" if budget and budget.describe() != "no limit" else ""
    return [
        Block("p", f"`{arch.summary()}`: {total.params:,} trainable parameters, {total.macs:,} MACs per image{use}."),
        Block("table", headers=["part", "block", "width", "depth", "kernel", "params", "MACs"], rows=rows),
        Block("image", "Architecture: one box per layer, height by channels, colour by block family.",
              path=images / "architecture.png"),
    ]


def build(runs: Runs, images: Path) -> list[Block]:
    images.mkdir(parents=True, exist_ok=True)
    doc = [Block("h1", "nas report"), Block("p", f"Written {datetime.datetime.now():%Y-%m-%d %H:%M}.")]
    commands = []
    arch, budget, note = None, None, None
    if runs.search is not None:
        meta = _read_json(runs.search / "search.json")
        ident = meta["identity"]
        budget = Budget.from_dict(ident["budget"])
        from ..search.trials import TrialLog
        log = TrialLog(runs.search / "trials.jsonl")
        records = log.records
        winner_path = runs.search / "winner.json"
        winner = Winner.load(winner_path, check_space=False) if winner_path.exists() else None
        space = _unchanged_space(ident["space"])
        doc += [Block("h2", "Space and budget")]
        doc += _space_blocks(ident, space, budget)
        ok = log.ok()
        failed = [r for r in records if not r.ok]
        seconds = max((r.elapsed for r in records), default=0) or sum(r.seconds for r in records)
        ladder = ident.get("ladder", {"rungs": 1, "eta": 1, "top_epochs": ident["recipe"]["epochs"]})
        rungs = ladder["rungs"]
        per_rung = [sum(r.rung == k for r in records) for k in range(rungs)]
        epochs = [ladder["top_epochs"] / ladder["eta"] ** (rungs - 1 - k) for k in range(rungs)]
        ladder_text = (f"Successive halving over {rungs} rungs of {', '.join(f'{e:g}' for e in epochs)} epochs, the best "
                       f"1/{ladder['eta']} of each rung promoted (jobs per rung: {', '.join(map(str, per_rung))})"
                       if rungs > 1 else f"Every candidate trained {epochs[0]:g} epochs")
        share = ident.get("min_share") or 0
        doc += [Block("h2", "Search"),
                Block("p", f"Strategy **{ident['strategy']}** (NNI), seed {ident['seed']}: {len(log)} candidates "
                           f"({len(failed)} failed jobs) in {seconds / 60:.1f} minutes. {ladder_text}"
                           + (f"; only candidates using {100 * share:.0f}% or more of the budget were trained" if share else "")
                           + f". Proxy: batch {ident['recipe']['batch_size']}, on "
                           f"{100 * (1 - ident['val_fraction']) * ident['data_fraction']:.0f}% of the training split, "
                           f"scored on a held-out {100 * ident['val_fraction']:.0f}% of it (never the test split). "
                           f"Data: {ident['data']}.")]
        if ok:
            for key in ("params", "macs"):
                plots.plot_tradeoff(records, key, images / f"tradeoff_{key}.png",
                                    budget.max_params if key == "params" else budget.max_macs, winner=log.best())
            plots.plot_best_so_far(records, images / "best_so_far.png")
            doc += [Block("image", "Proxy accuracy against parameters, one colour per rung; the Pareto front of "
                                   "rung 0 in red, the winner starred.", path=images / "tradeoff_params.png", half=True),
                    Block("image", "Proxy accuracy against MACs.", path=images / "tradeoff_macs.png", half=True),
                    Block("image", "Every job's proxy accuracy over the search's time, with the best so far of each rung.",
                          path=images / "best_so_far.png")]
        top = sorted(ok, key=lambda r: (-r.rung, -r.score))[:10]
        doc.append(Block("table", headers=["rank", "trial", "rung", "params", "MACs", "budget use", "proxy acc", "s",
                                           "architecture"],
                         rows=[[i + 1, r.trial, r.rung, f"{r.params:,}", human(r.macs),
                                f"{100 * budget.use(Cost(r.params, r.macs)):.0f}%", _pct(r.score),
                                f"{r.seconds:.0f}", r.summary] for i, r in enumerate(top)]))
        if failed:
            doc.append(Block("table", headers=["failed trial", "reason"], rows=[[r.trial, r.reason] for r in failed]))
        if winner is not None:
            arch = winner.architecture
            note = edges_note(space, winner.candidate) if space is not None else None
        commands.append(meta.get("command") or f"nas search {ident['space']['path']} --budget ... --strategy {ident['strategy']}")
    if runs.retrain is not None:
        result = RetrainResult.load(runs.retrain / "result.json")
        arch = result.architecture
        if budget is None and result.budget:
            budget = Budget.from_dict(result.budget)
    if arch is not None:
        doc += [Block("h2", "Winner")] + _architecture_blocks(arch, budget, images)
        if note:
            doc.append(Block("p", note))
    if runs.retrain is not None:
        doc += _retrain_blocks(runs.retrain, result, images)
        commands.append(result.command or "nas retrain winner.json")
        commands.append(f"python {runs.retrain / 'evaluate.py'}")
    doc += [Block("h2", "Reproduce"), Block("code", "\n".join(commands))]
    return doc


def _unchanged_space(space_info: dict):
    """The search's space, loaded from its file, or None where the file is gone or has changed since."""
    from ..spaces import load_space

    try:
        space = load_space(space_info["path"])
    except UserError:
        return None
    return space if space.fingerprint() == space_info["fingerprint"] else None


def _space_blocks(ident: dict, space, budget: Budget) -> list[Block]:
    """The space and its pruning by the budget; `space` is None where its file is gone or has changed."""
    from ..survey import survey

    space_info = ident["space"]
    text = f"Space **{space_info['name']}** (`{space_info['path']}`, fingerprint {space_info['fingerprint']}); budget: {budget.describe()}."
    if space is None:
        return [Block("p", text + " The space file is no longer there as it was, so its pruning is not shown.")]
    s = survey(space, budget, seed=0, examples=0)
    how = "counted exactly" if s.exact else f"estimated from {s.examined:,} uniform samples, 95% margin ±{s.margin:,}"
    return [Block("p", text + f" The space holds {s.size:,} candidates in {len(space.choices)} choices; "
                              f"{s.feasible:,} ({100 * s.fraction:.2f}%) fit the budget ({how}), so the budget pruned "
                              f"{100 * (1 - s.fraction):.2f}% of the space before anything trained.")]


def _retrain_blocks(folder: Path, result: RetrainResult, images: Path) -> list[Block]:
    history = read_metrics(folder / "metrics.csv")
    plots.plot_curves(history, images)
    recipe = result.recipe
    rows = [["final test accuracy", _pct(result.final_test_acc)],
            ["best test accuracy (any epoch)", _pct(result.best_test_acc)],
            [f"final test accuracy, {result.tta_name}", _pct(result.final_test_acc_tta)],
            ["proxy accuracy in the search", _pct(result.proxy_score)],
            ["epochs", result.epochs], ["training time", f"{result.seconds:.0f} s on {result.execution_summary}"],
            ["data", result.data]]
    return [Block("h2", "Retrain"),
            Block("p", f"Trained from scratch for {result.epochs} epochs "
                       f"({recipe['optimizer']}, peak lr {recipe['lr']}, batch {recipe['batch_size']}, "
                       f"label smoothing {recipe['label_smoothing']}) on the whole training split; "
                       "test accuracy measured after each epoch."),
            Block("table", headers=["measure", "value"], rows=rows),
            Block("image", "Loss, train and test.", path=images / "loss.png", half=True),
            Block("image", "Error, train and test.", path=images / "error.png", half=True)]


# --- renderers -------------------------------------------------------------------------------

def to_markdown(doc: list[Block], base: Path) -> str:
    out = []
    for b in doc:
        if b.kind == "h1":
            out.append(f"# {b.text}\n")
        elif b.kind == "h2":
            out.append(f"## {b.text}\n")
        elif b.kind == "p":
            out.append(b.text + "\n")
        elif b.kind == "code":
            out.append("```\n" + b.text + "\n```\n")
        elif b.kind == "image":
            out.append(f"![{b.text}]({b.path.relative_to(base)})\n\n*{b.text}*\n")
        elif b.kind == "table":
            out.append("| " + " | ".join(map(str, b.headers)) + " |")
            out.append("|" + "---|" * len(b.headers))
            out += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in b.rows]
            out.append("")
    return "\n".join(out)


CSS = """
body { font: 15px/1.5 system-ui, -apple-system, 'Segoe UI', sans-serif; max-width: 980px; margin: 2em auto;
       padding: 0 1.2em; color: #1d1d1f; }
h1 { font-size: 1.9em; margin-bottom: 0.1em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; padding-bottom: .2em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border-bottom: 1px solid #e3e3e3; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f5f5f7; } td:nth-child(n+2) { font-variant-numeric: tabular-nums; }
figure { margin: 1.2em 0; } figure img { max-width: 100%; } figcaption { color: #666; font-size: 0.85em; }
.row { display: flex; gap: 1.5em; } .row figure { flex: 1; margin: 0.6em 0; }
pre { background: #f5f5f7; padding: 0.8em 1em; overflow-x: auto; border-radius: 6px; }
code { font-family: ui-monospace, 'DejaVu Sans Mono', monospace; font-size: 0.92em; }
"""


def _inline(text: str) -> str:
    """`code` and **bold** in a paragraph, everything else escaped."""
    import re
    s = html.escape(text)
    s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", s)


def to_html(doc: list[Block]) -> str:
    body, i = [], 0
    while i < len(doc):
        b = doc[i]
        if b.kind == "image" and b.half and i + 1 < len(doc) and doc[i + 1].kind == "image" and doc[i + 1].half:
            body.append(f'<div class="row">{_figure(b)}{_figure(doc[i + 1])}</div>')
            i += 2
            continue
        if b.kind in ("h1", "h2"):
            body.append(f"<{b.kind}>{html.escape(b.text)}</{b.kind}>")
        elif b.kind == "p":
            body.append(f"<p>{_inline(b.text)}</p>")
        elif b.kind == "code":
            body.append(f"<pre><code>{html.escape(b.text)}</code></pre>")
        elif b.kind == "image":
            body.append(_figure(b))
        elif b.kind == "table":
            head = "".join(f"<th>{html.escape(str(h))}</th>" for h in b.headers)
            rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in b.rows)
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        i += 1
    return (f"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>nas report</title>"
            f"<style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def _figure(b: Block) -> str:
    data = base64.b64encode(b.path.read_bytes()).decode()
    return (f'<figure><img alt="{html.escape(b.text)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(b.text)}</figcaption></figure>")


def to_pdf(doc: list[Block], path: Path) -> None:
    """The same document through reportlab's platypus."""
    import re

    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import cm
    from reportlab.platypus import Image, Paragraph, Preformatted, SimpleDocTemplate, Spacer, Table, TableStyle

    styles = getSampleStyleSheet()
    cell = styles["BodyText"].clone("cell", fontSize=7.5, leading=9)
    width = A4[0] - 3 * cm
    story = []
    for b in doc:
        if b.kind == "h1":
            story.append(Paragraph(html.escape(b.text), styles["Title"]))
        elif b.kind == "h2":
            story.append(Paragraph(html.escape(b.text), styles["Heading2"]))
        elif b.kind == "p":
            text = re.sub(r"<code>(.*?)</code>", r'<font face="Courier">\1</font>', _inline(b.text))
            story.append(Paragraph(text.replace("<strong>", "<b>").replace("</strong>", "</b>"), styles["BodyText"]))
        elif b.kind == "code":
            story.append(Preformatted(b.text, styles["Code"]))
        elif b.kind == "image":
            from reportlab.lib.utils import ImageReader
            w, h = ImageReader(str(b.path)).getSize()
            scale = min(1.0, (width / 2 if b.half else width) / w, (A4[1] * 0.3) / h)
            story += [Image(str(b.path), w * scale, h * scale), Paragraph(html.escape(b.text), cell), Spacer(1, 6)]
        elif b.kind == "table":
            data = [[Paragraph(f"<b>{html.escape(str(h))}</b>", cell) for h in b.headers]]
            data += [[Paragraph(html.escape(str(c)), cell) for c in row] for row in b.rows]
            wide = [i for i, h in enumerate(b.headers) if h in ("architecture", "reason")]
            widths = None
            if wide:
                narrow = (width * 0.55) / max(1, len(b.headers) - 1)
                widths = [width * 0.45 if i in wide else narrow for i in range(len(b.headers))]
            table = Table(data, colWidths=widths, repeatRows=1, hAlign="LEFT")
            table.setStyle(TableStyle([("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#f0f0f2")),
                                       ("LINEBELOW", (0, 0), (-1, -1), 0.3, colors.HexColor("#dddddd")),
                                       ("VALIGN", (0, 0), (-1, -1), "TOP")]))
            story += [table, Spacer(1, 8)]
    SimpleDocTemplate(str(path), pagesize=A4, leftMargin=1.5 * cm, rightMargin=1.5 * cm, topMargin=1.5 * cm,
                      bottomMargin=1.5 * cm, title="nas report").build(story)


def write_report(dirs: list[str], out: str | None = None, pdf: bool = False) -> list[Path]:
    runs = find_runs(dirs)
    target = Path(out or dirs[0])
    images = target / "report"
    try:
        target.mkdir(parents=True, exist_ok=True)
        doc = build(runs, images)
    except OSError as e:
        raise UserError(f"cannot write to {target}: {e.strerror}") from None
    from ..files import write_text
    write_text(target / "report.md", to_markdown(doc, target))
    write_text(target / "report.html", to_html(doc))
    written = [target / "report.md", target / "report.html"]
    if pdf:
        to_pdf(doc, target / "report.pdf")
        written.append(target / "report.pdf")
    return written
