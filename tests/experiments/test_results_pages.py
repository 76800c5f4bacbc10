"""The results tables of the pages (README's front table, docs/results/*, docs/glue.md's small table,
docs/method.md's σ sweep, docs/cost.md's CPU table) against the reports they come from: a report rerun
with its page left unedited, or a number copied wrong, fails here."""

import csv
import os
import re

from tests.helpers import REPO

README = os.path.join(REPO, "README.md")


def text(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


CONVERGED = os.path.join(REPO, "docs", "results", "converged")
CONVERGED_README = os.path.join(CONVERGED, "README.md")
# the pages' row names for the report's methods, and which report (folder of table2.csv) holds each
REPORT_ROWS = {
    "std": ("table2", "std"),
    "R-Drop": ("table2", "rdrop"),
    "R3F": ("table2", "r3f"),
    "R4F": ("table2", "r4f"),
    "SMART": ("table2", "smart"),
    "FreeLB": ("table2", "freelb"),
    "Hugging Face peer, std": ("peer", "hf"),
}
NUMBER = re.compile(r"[-+\u2212]?\d+(?:\.\d+)?")


def cells_of(line):
    return [cell.strip() for cell in line.strip("|").split("|")]


def body_rows(lines, header):
    """The cells of each row of the markdown table whose header is lines[header]."""
    rows = []
    for row in lines[header + 2 :]:
        if not row.startswith("|"):
            break
        rows.append(cells_of(row))
    return rows


def method_tables(markdown):
    """Every table whose header starts '| method |': (task columns, {row name: {task: cell}})."""
    lines, tables = markdown.splitlines(), []
    for i, line in enumerate(lines):
        if line.startswith("| method |"):
            tasks = [cell.split()[0] for cell in cells_of(line)[1:]]
            rows = {name: dict(zip(tasks, cells)) for name, *cells in body_rows(lines, i)}
            tables.append((tasks, rows))
    return tables


def rounds_from(printed, value, slack=0.0):
    """Whether a printed number is the value rounded to as many decimals as it shows (give or take slack)."""
    decimals = len(printed.partition(".")[2])
    return abs(float(printed.replace("\u2212", "-")) - value) <= 0.5 * 10**-decimals + slack + 1e-9


def report_rows():
    """The report row (table2.csv) of each page row name in REPORT_ROWS."""
    return {
        name: report_folder(os.path.join(CONVERGED, report))[0][method]
        for name, (report, method) in REPORT_ROWS.items()
    }


def spread_cell_fine(cell, row, task):
    """'mean ± std (n)' or, for one seed, 'mean (1)', as the report's row gives them."""
    printed, n = NUMBER.findall(cell), int(float(row[f"{task} seeds"]))
    expected = [row[f"{task} mean"]] + ([row[f"{task} std"]] if n > 1 else [])
    return (
        len(printed) == len(expected) + 1
        and int(printed[-1]) == n
        and all(rounds_from(shown, float(value)) for shown, value in zip(printed, expected))
    )


def mean_cell_errors(tasks, rows):
    """Cells 'mean ± std (n)' (or '-' for no runs) that the report's numbers do not round to,
    and reference cells that are not the report's majority class or the published value."""
    report = report_rows()
    _, report_md = method_tables(text(os.path.join(CONVERGED, "table2", "table2.md")))[0]
    with open(os.path.join(CONVERGED, "published.csv"), encoding="utf-8") as f:
        published = {row["column"]: row["value"] for row in csv.DictReader(f)}
    errors = []
    for name, cells in rows.items():
        for task in tasks:
            cell, printed = cells[task], NUMBER.findall(cells[task])
            if name in report:
                row = report[name]
                seeds = int(float(row.get(f"{task} seeds") or 0))
                fine = (cell == "-") if seeds == 0 else spread_cell_fine(cell, row, task)
            elif name == "majority class":
                fine = cell == report_md["majority class"][task]
            elif name == "MiniLM-L6xH384, published":
                fine = printed[:1] == [published[task]]
            else:
                fine = False  # a row no report gives: name its report in REPORT_ROWS
            if not fine:
                errors.append((name, task, cell))
    return errors


def test_readme_results_table_is_the_reports_table():
    tasks, rows = method_tables(text(README))[0]
    assert set(REPORT_ROWS) | {"majority class", "MiniLM-L6xH384, published"} <= set(rows)
    errors = mean_cell_errors(tasks, rows)
    assert not errors, f"README cells the report does not give (row, task, cell): {errors}"


def test_converged_pages_tables_are_the_reports():
    """The results page's Table 2 (mean ± std) and its paired table (difference, Holm p) against the
    report: a rerun report with an unedited page fails here."""
    (tasks, rows), (paired_tasks, paired), *_ = method_tables(text(CONVERGED_README))
    assert {"std", "R3F", "R4F", "majority class"} <= set(rows)
    errors = mean_cell_errors(tasks, rows)
    assert not errors, f"Table 2 cells the report does not give (row, task, cell): {errors}"
    report, errors = report_rows(), []
    for name, cells in paired.items():
        for task in paired_tasks:
            cell, printed = cells[task], NUMBER.findall(cells[task])
            row = report[name]
            if not row.get(f"{task} mean difference to std"):
                fine = cell == "-"
            elif not row.get(f"{task} Holm-adjusted p"):  # one seed: a difference, no test
                fine = rounds_from(printed[0], float(row[f"{task} mean difference to std"])) and "no test" in cell
            else:
                difference = float(row[f"{task} mean difference to std"])
                p_adjusted = float(row[f"{task} Holm-adjusted p"])
                spread = max(float(row[f"{task} std"]), float(report["std"][f"{task} std"]))
                p_value = cell.split(", p ")[1].split(",")[0].split()[0]
                # the verdict as the report words it: adjusted p < 0.05 and a difference beyond the seed spread
                differs = p_adjusted < 0.05 and abs(difference) > spread
                fine = (
                    rounds_from(printed[0], difference)
                    and rounds_from(p_value, p_adjusted)
                    and ("differs" in cell) == differs
                )
            if not fine:
                errors.append((name, task, cell))
    assert not errors, f"paired cells the report does not give: {errors}"


PROBING = os.path.join(REPO, "docs", "results", "probing_real")
# the pages' names for the reports' methods (the probing page adds the pre-trained encoder)
PAGE_METHODS = {name: method for name, (_, method) in REPORT_ROWS.items()}
PROBE_METHODS = {**PAGE_METHODS, "pre-trained": "pretrained"}
SUMMARY_NAME = re.compile(r"`(\w+_summary\.md)`")


def probe_summary(path):
    """A probing report's per-probe table: {(probe task, method): (mean, std, difference, min, max, Holm p)},
    the numbers as printed (strings); the last four None for std."""
    cells = {}
    for line in text(path).splitlines():
        parts = cells_of(line)
        if len(parts) == 7 and parts[0] not in ("probe", "---") and "±" in parts[3]:
            mean, spread = parts[3].split(" ± ")
            versus = NUMBER.findall(parts[5]) if parts[5] != "-" else [None] * 3
            p_value = parts[6].split("p = ")[1].rstrip(")") if "p = " in parts[6] else None
            cells[(parts[0], parts[1])] = (mean, spread, *versus, p_value, parts[6].startswith("differs"))
    return cells


def probe_drops(path):
    """A chain report's drop of the source task's probe per method (first table, last column), as printed."""
    lines = text(path).splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| method |"))
    assert cells_of(lines[header])[-1].endswith(" drop"), lines[header]
    return {cells[0]: cells[-1] for cells in body_rows(lines, header)}


def probe_seed_scores(path, method, task, position):
    """The per-seed scores of one probe in a report's records (.tsv), in seed order."""
    column = "metric_value" if "_metric" in os.path.basename(path) else "accuracy"
    with open(path, encoding="utf-8") as f:
        records = [
            r
            for r in csv.DictReader(f, delimiter="\t")
            if (r["method"], r["probe_task"], int(r["position"])) == (method, task, position)
        ]
    return [float(r[column]) for r in sorted(records, key=lambda r: int(r["seed"]))]


def page_tables(path, names=None):
    """Every markdown table of a page with what its section heading names (``names``: a pattern whose
    group 1 is kept; default the report summary, `*_summary.md`): [(name or None, header cells, body rows)]."""
    names = names or SUMMARY_NAME
    tables, name = [], None
    lines = text(path).splitlines()
    for i, line in enumerate(lines):
        if line.startswith("#"):
            named = names.search(line)
            name = named.group(1) if named else None
        elif line.startswith("|") and i + 1 < len(lines) and lines[i + 1].startswith("|---"):
            tables.append((name, cells_of(line), body_rows(lines, i)))
    return tables


def probing_page_tables():
    """The probing page's tables whose header starts '| probe (', each with the report summary its
    section names: (summary file, header cells, {probe task: row cells})."""
    return [
        (summary, header, {cells[0].split()[0]: cells for cells in rows})
        for summary, header, rows in page_tables(os.path.join(PROBING, "README.md"))
        if header[0].startswith("probe (")
    ]


def probe_cell_errors(summary, header, rows):
    """Cells 'mean ± std[, difference [min, max]], p P' (or 'difference [min, max], p = P' under 'X − std')
    that the summary does not print."""
    errors = []
    for probe, cells in rows.items():
        for column, cell in zip(header[1:], cells[1:]):
            name = column.split(" \u2212 std")[0]
            if name not in PROBE_METHODS:
                errors.append((probe, column, cell))  # a column no report gives
                continue
            if not cell:
                continue
            printed = NUMBER.findall(cell)
            mean, spread, difference, low, high, p_value, _ = summary[(probe, PROBE_METHODS[name])]
            if " \u2212 std" in column:
                expected = [difference, low, high, p_value]
            else:
                expected = [mean, spread] + ([difference] if ", " in cell else [])
                expected += [low, high] if "[" in cell else []
                expected += [p_value] if ", p " in cell else []
            fine = len(printed) == len(expected) and all(
                rounds_from(shown, float(value)) for shown, value in zip(printed, expected)
            )
            if not fine:
                errors.append((probe, column, cell))
    return errors


def test_probing_page_tables_are_the_reports():
    """The probing page's Figure 3 tables against the report summaries their sections name: a table
    left unedited after a report is rerun, or a number copied wrong, fails here."""
    tables = probing_page_tables()
    assert len(tables) >= 4 and all(summary for summary, _, _ in tables), [t[:2] for t in tables]
    errors = []
    for summary, header, rows in tables:
        cells = probe_summary(os.path.join(PROBING, summary))
        errors += [(summary, *error) for error in probe_cell_errors(cells, header, rows)]
    assert not errors, f"probing page cells their report does not print (summary, probe, column, cell): {errors}"


def chain_probe(summary, task, row, column):
    """The (probe, method) of a chain report's summary that a chain table's cell stands for: the probed
    task, the stage it follows ('after MRPC' in the row) or its cycle ('cycle 2' in the column), and the
    method (the column's; a 'pre-trained' row or column: the encoder before fine-tuning)."""
    pretrained = row.startswith("pre-trained") or column.startswith("pre-trained")
    method = "pretrained" if pretrained else PROBE_METHODS.get(re.split(r",| \u2212 std", column)[0])
    after, cycle = re.search(r"after (\S+)", row), re.search(r"cycle (\d+)", column)

    def names(probe):
        if not probe.startswith(task + " "):
            return False
        if pretrained:
            return probe.endswith(" before fine-tuning")
        return bool(after or cycle) and (
            (not after or f" after {after.group(1)} (" in probe) and (not cycle or f"cycle {cycle.group(1)})" in probe)
        )

    keys = [key for key in summary if key[1] == method and names(key[0])]
    return keys[0] if len(keys) == 1 else None


def chain_cell_errors(summary_path, header, rows):
    """Cells of a chain table (Figures 4 and 5) that the report does not print: 'mean ± std' with the
    seeds' scores in brackets where shown, 'difference [min, max], p = P[: differs]', and a 'drop' row."""
    summary, drops, errors = probe_summary(summary_path), probe_drops(summary_path), []
    records = summary_path.replace("_summary.md", ".tsv")
    for cells in rows:
        row = cells[0]
        task = row.split()[0] if header[0] == "probe" else header[0].split()[0]
        for column, cell in zip(header[1:], cells[1:]):
            if not cell:
                continue
            printed = NUMBER.findall(cell)
            if row.startswith("drop "):
                fine = printed == [drops.get(PROBE_METHODS.get(column))]
            elif (key := chain_probe(summary, task, row, column)) is None:
                fine = False  # a cell no probe of the report stands for
            else:
                mean, spread, difference, low, high, p_value, differs = summary[key]
                if " \u2212 std" in column:
                    expected = [difference, low, high, p_value]
                    fine = (": differs" in cell) == differs
                else:
                    position = int(re.search(r"\(stage (\d+)", key[0]).group(1)) if "(stage" in key[0] else 0
                    seeds = probe_seed_scores(records, key[1], task, position)
                    expected = [mean, spread] + (seeds if len(printed) > 2 else [])
                    fine = True
                fine = (
                    fine
                    and len(printed) == len(expected)
                    and all(rounds_from(shown, float(value)) for shown, value in zip(printed, expected))
                )
            if not fine:
                errors.append((row, column, cell))
    return errors


def test_probing_chain_tables_are_the_reports():
    """The probing page's Figure 4 and Figure 5 tables (stages or cycles by method) against the chain
    reports their sections name, per-seed scores against the reports' records."""
    tables = [
        (summary, header, rows)
        for summary, header, rows in page_tables(os.path.join(PROBING, "README.md"))
        if summary and summary.startswith(("figure4", "figure5"))
    ]
    assert len(tables) >= 2, [t[:2] for t in tables]
    errors = []
    for summary, header, rows in tables:
        errors += [(summary, *error) for error in chain_cell_errors(os.path.join(PROBING, summary), header, rows)]
    assert not errors, f"chain table cells their report does not print (summary, row, column, cell): {errors}"


def report_folder(path):
    """A report folder's rows (table2.csv by method), counted runs ({method: {task: {seed: best}}}) and
    'Against std' cells (table2.md, {method: {task: cell}}; empty where it has none)."""
    with open(os.path.join(path, "table2.csv"), encoding="utf-8") as f:
        rows = {row["method"]: row for row in csv.DictReader(f)}
    runs = {}
    with open(os.path.join(path, "runs.csv"), encoding="utf-8") as f:
        for run in csv.DictReader(f):
            if run["counted"] == "True":
                runs.setdefault(run["method"], {}).setdefault(run["task"], {})[int(run["seed"])] = float(run["best"])
    against = text(os.path.join(path, "table2.md")).partition("## Against std")[2]
    versus = method_tables(against)[0][1] if against else {}
    return rows, runs, versus


def converged_report(folder):
    return report_folder(os.path.join(CONVERGED, folder))


FOLDER_NAME = re.compile(r"\(`(\w+)/`\)")


def section_method_table(markdown, folder):
    """The first '| method |' table under the heading that names the report folder `folder/`."""
    start = re.search(rf"^#.*\(`{re.escape(folder)}/`\)", markdown, re.MULTILINE).start()
    header = markdown.index("\n| method |", start)
    return method_tables(markdown[header + 1 :])[0]


def test_converged_subset_table_is_its_report():
    """SST-2 on its subset: mean ± std (n), the seeds' values, the paired difference with its [min, max]
    and Holm p, and the median wall time, against `sst2_8k/` (table2.csv and runs.csv)."""
    (task, *_), rows = section_method_table(text(CONVERGED_README), "sst2_8k")
    report, runs, _ = converged_report("sst2_8k")
    seeds = {method: by_task[task] for method, by_task in runs.items()}
    assert {"std", "R3F", "R4F"} <= set(rows) and set(seeds) <= {PAGE_METHODS.get(name) for name in rows}
    errors = []
    for name, cells in rows.items():
        if name not in PAGE_METHODS:
            continue  # the reference rows, checked with Table 2
        method, (mean_cell, seed_cell, versus_cell, wall_cell) = PAGE_METHODS[name], list(cells.values())
        row, values = report[method], [value for _, value in sorted(seeds[method].items())]
        mean, spread, n = NUMBER.findall(mean_cell)
        fine = (
            rounds_from(mean, float(row[f"{task} mean"]))
            and rounds_from(spread, float(row[f"{task} std"]))
            and int(n) == len(values)
            and [float(v) for v in NUMBER.findall(seed_cell)] == values
            and wall_cell.replace(",", "") == f"{float(row[f'{task} median wall to best (s)']):.0f} s"
        )
        if method != "std":
            differences = [value - seeds["std"][seed] for seed, value in seeds[method].items()]
            difference, low, high, p_value = NUMBER.findall(versus_cell)
            fine = fine and all(
                rounds_from(shown, value)
                for shown, value in zip(
                    (difference, low, high, p_value),
                    (
                        float(row[f"{task} mean difference to std"]),
                        min(differences),
                        max(differences),
                        float(row[f"{task} Holm-adjusted p"]),
                    ),
                )
            )
        if not fine:
            errors.append((name, cells))
    assert not errors, f"subset table rows its report does not give: {errors}"


def versus_cell_fine(cell, report_cell):
    """'difference [min, max], p P[, differs]' (or 'difference (one seed)') as the report's 'Against
    std' cell prints it ('difference [min, max], n=.., verdict (Holm p = P)')."""
    printed, reported = NUMBER.findall(cell), NUMBER.findall(report_cell)
    expected = reported[:1] if len(printed) == 1 else reported[:3] + reported[-1:]
    return (
        len(printed) == len(expected)
        and all(rounds_from(shown, float(value.replace("+", ""))) for shown, value in zip(printed, expected))
        and ("differs" in cell) == ("differs" in report_cell)
    )


def test_converged_peer_table_is_its_report():
    """The peer check's table: each side's mean ± std with its seeds' values, and the Welch difference with
    its interval and Holm p, against `peer/`."""
    rows, runs, versus = converged_report("peer")
    tables = [t for t in page_tables(CONVERGED_README) if t[1][:2] == ["task", "std through the recipe"]]
    assert len(tables) == 1
    _, header, body = tables[0]
    errors = []
    for cells in body:
        task = cells[0].split()[0]
        fine = True
        for method, cell in (("std", cells[1]), ("hf", cells[2])):
            mean_cell, seed_cell = cell.split(":", 1)
            seeds = [value for _, value in sorted(runs[method][task].items())]
            fine = fine and spread_cell_fine(mean_cell.replace("n = ", ""), rows[method], task)
            printed = NUMBER.findall(seed_cell)
            fine = fine and len(printed) == len(seeds) and all(map(rounds_from, printed, seeds))
        fine = fine and versus_cell_fine(cells[3], versus["hf"][task])
        if not fine:
            errors.append(cells)
    assert len(body) >= 2 and not errors, f"peer table rows its report does not give: {errors}"


def test_converged_seed_tables_are_their_reports():
    """Tables of one task per seed (SMART's step rule, FreeLB's radius): each row is one method of the
    section's report, its seeds' values, mean ± std (n) and, where shown, its paired difference to std."""
    # tables whose header reads '| <task> <metric>, seed | ... | 1 | 2 | ... |', with the report folder named
    tables = [t for t in page_tables(CONVERGED_README, FOLDER_NAME) if t[1][0].endswith(", seed")]
    assert len(tables) >= 2 and all(folder for folder, _, _ in tables), [t[:2] for t in tables]
    errors = []
    for folder, header, body in tables:
        rows, runs, versus = converged_report(folder)
        task = header[0].split()[0]
        seed_columns = [i for i, column in enumerate(header) if column.isdigit()]
        mean_column = header.index("mean ± std (n)")
        for cells in body:
            shown = {int(header[i]): cells[i].strip("*") for i in seed_columns if cells[i]}
            n = int(NUMBER.findall(cells[mean_column])[-1])
            family = PAGE_METHODS.get(re.match(r"[^,(]+", cells[0]).group(0).strip())
            # the report's method this row is: of the row's family ('smart', 'smart-...'), the one whose runs it shows
            methods = [
                m
                for m in rows
                if m in runs
                and (m == family or m.startswith(f"{family}-"))
                and len(runs[m][task]) == n
                and all(
                    seed in runs[m][task] and rounds_from(value, runs[m][task][seed]) for seed, value in shown.items()
                )
            ]
            fine = len(methods) == 1 and spread_cell_fine(cells[mean_column], rows[methods[0]], task)
            if fine and methods[0] != "std" and len(cells) > mean_column + 1:
                fine = versus_cell_fine(cells[mean_column + 1], versus[methods[0]][task])
            if not fine:
                errors.append((folder, cells[0], methods))
    assert not errors, f"seed table rows their report does not give (folder, row, matching methods): {errors}"


def test_small_table_is_its_report():
    """docs/glue.md's 80-update table (what the demo's preset shows): mean ± std [min, max] (n = N) per
    cell against `glue_small/` (table2.csv and runs.csv)."""
    tables = [t for t in method_tables(text(os.path.join(REPO, "docs", "glue.md"))) if "R3F, σ = RMS" in t[1]]
    assert len(tables) == 1
    tasks, rows = tables[0]
    report, runs, _ = report_folder(os.path.join(REPO, "docs", "results", "glue_small"))
    names = {**PAGE_METHODS, "R3F, σ = RMS": "r3f-rel"}  # the page names the row's method under the table
    errors = []
    for name, cells in rows.items():
        method = names.get(name)
        for task in tasks:
            values = list(runs.get(method, {}).get(task, {}).values())
            printed = NUMBER.findall(cells[task])
            expected = [report[method][f"{task} mean"], report[method][f"{task} std"], min(values), max(values)]
            fine = (
                method in report
                and len(printed) == 5
                and all(rounds_from(shown, float(value)) for shown, value in zip(printed, expected))
                and int(printed[4]) == len(values) == int(float(report[method][f"{task} seeds"]))
            )
            if not fine:
                errors.append((name, task, cells[task]))
    assert len(rows) >= 4 and not errors, f"small-table cells the report does not give: {errors}"


SCIENTIFIC = re.compile(r"\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def same_as_printed(shown, value):
    """Whether a number printed in fixed or scientific notation is the value at the digits it shows."""
    mantissa, _, exponent = shown.partition("e")
    decimals = len(mantissa.partition(".")[2])
    return abs(float(shown) - float(value)) <= 0.5 * 10 ** (int(exponent or 0) - decimals) * (1 + 1e-9)


def test_sigma_sweep_tables_are_their_reports():
    """docs/method.md's σ-sweep tables (one per task) against `sigma_sweep/<task>/table.md`: each row's
    median [min, max], mean ± std, noise_kl and symm_kl; the noise-only row's ranges over the `-same` variants."""
    tables = [t for t in page_tables(os.path.join(REPO, "docs", "method.md")) if "σ / RMS" in t[1]]
    assert len(tables) >= 2
    errors = []
    for _, header, body in tables:
        task = header[0].split()[0]
        report = {}
        for line in text(os.path.join(REPO, "docs", "results", "sigma_sweep", task, "table.md")).splitlines():
            cells = cells_of(line)
            if len(cells) == 10 and cells[0] not in ("variant", "---"):
                report[cells[0]] = dict(zip(("median", "mean", "noise_kl", "symm_kl"), [*cells[3:5], *cells[7:9]]))
        for name, sigma, median, mean, noise_kl, symm_kl in body:
            if name.startswith("noise only"):
                same = [report[v] for v in report if v.endswith("-same")]
                means = [SCIENTIFIC.findall(r["mean"]) for r in same]
                shown = SCIENTIFIC.findall(median) + SCIENTIFIC.findall(mean) + SCIENTIFIC.findall(noise_kl)
                expected = [
                    min(float(m) for m, _ in means),
                    max(float(m) for m, _ in means),
                    min(float(s) for _, s in means),
                    max(float(s) for _, s in means),
                    same[0]["noise_kl"],
                    same[-1]["noise_kl"],
                ]
            else:
                variant = {"standard": "std", "R-Drop": "rdrop"}.get(name, f"rel{sigma}")
                row = report.get(variant)
                cells = (median, mean, noise_kl, symm_kl)
                shown = [n for cell in cells for n in SCIENTIFIC.findall(cell)]
                expected = (
                    [n for key in ("median", "mean", "noise_kl", "symm_kl") for n in SCIENTIFIC.findall(row[key])]
                    if row
                    else []
                )
            if len(shown) != len(expected) or not all(map(same_as_printed, shown, expected)):
                errors.append((task, name, sigma))
    assert not errors, f"σ-sweep rows their report does not give (task, row, σ / RMS): {errors}"


def test_cpu_cost_table_is_its_report():
    """docs/cost.md's CPU cost table against `train_cost/cpu.md`, row for row in the report's order, each
    page column read from the report column it names ('updates/s' is the report's 'updates/s (wall)');
    a ratio of exactly 1 may be printed without its [min, max]."""
    page = [t for t in page_tables(os.path.join(REPO, "docs", "cost.md")) if t[1][:2] == ["config", "CPU ms / update"]]
    report = [
        t for t in page_tables(os.path.join(REPO, "docs", "results", "train_cost", "cpu.md")) if t[1][0] == "config"
    ]
    assert len(page) == 1 and len(report) == 1
    (_, header, body), (_, report_header, report_body) = page[0], report[0]
    assert len(body) == len(report_body)
    columns = [next(i for i, c in enumerate(report_header) if c.split(" (")[0] == column) for column in header[1:]]
    errors = []
    for cells, report_cells in zip(body, report_body):
        for column, cell, index in zip(header[1:], cells[1:], columns):
            shown, expected = NUMBER.findall(cell), NUMBER.findall(report_cells[index])
            fine = (len(shown) == len(expected) or (len(shown) == 1 and float(expected[0]) == 1.0)) and all(
                map(rounds_from, shown, map(float, expected))
            )
            if not fine:
                errors.append((report_cells[0], column, cell))
    assert not errors, f"cost table cells the report does not give (config, column, cell): {errors}"


# ---- numbers in the pages' prose -------------------------------------------------------------
SIGNED = NUMBER.pattern
PAIRED_CELL = re.compile(rf"({SIGNED}) \[({SIGNED}), ({SIGNED})\]")  # difference [min, max]
# the same and the p-value after it: 'Holm p = P' in its report's row before the next difference,
# ', p P' or ', Holm p = P' in prose
REPORTED_PAIRED = re.compile(PAIRED_CELL.pattern + r"(?:[^\n\[]*?Holm p = (\d\.\d+))?")
PROSE_PAIRED = re.compile(PAIRED_CELL.pattern + r"(?:,? (?:\(?Holm )?p(?: =)? (\d\.\d+))?")
SPREAD_CELL = re.compile(r"(\d+(?:\.\d+)?) (?:±|\+-) (\d+(?:\.\d+)?)")  # mean ± std
RESULTS = os.path.join(REPO, "docs", "results")
# Prose that quotes numbers no committed report prints, by design: (page, the line that opens it);
# it runs to the next heading.
NOT_FROM_REPORTS = {
    # each line one earlier report, with the numbers it gave then
    ("docs/results/converged/README.md", "How the table grew."),
    # single probe runs, quoted where they were made
    ("docs/results/probing_real/README.md", "## The cached probe against the fairseq probe"),
}


def prose_paragraphs(relpath):
    """(first line number, paragraph as one line) of a page outside its tables, code blocks and
    NOT_FROM_REPORTS: a number wrapped over two lines is read whole."""
    out, in_code, skipping, start, lines = [], False, False, 0, []
    for number, line in enumerate(text(os.path.join(REPO, relpath)).splitlines() + [""], 1):
        if line.startswith("#"):
            skipping = False
        skipping = skipping or any(line.startswith(opener) for page, opener in NOT_FROM_REPORTS if page == relpath)
        in_code = in_code != line.startswith("```")
        if in_code or skipping or line.startswith(("|", "```")) or not line.strip():
            if lines:
                out.append((start, " ".join(lines)))
            lines = []
        else:
            start = start if lines else number
            lines.append(line.strip())
    return out


def prose_pages():
    """README.md, docs/*.md but docs/cost.md (its prose quotes benchmark printouts) and every
    README.md under docs/results."""
    docs = os.path.join(REPO, "docs")
    pages = ["README.md"] + [
        os.path.join("docs", name) for name in sorted(os.listdir(docs)) if name.endswith(".md") and name != "cost.md"
    ]
    pages += [
        os.path.relpath(os.path.join(folder, "README.md"), REPO)
        for folder, _, files in os.walk(RESULTS)
        if "README.md" in files
    ]
    return pages


def near(printed, reported):
    """Whether a number in prose is a report's number at the digits the prose shows (the report's own
    rounding allowed for when the prose shows fewer)."""
    shown, given = (len(s.partition(".")[2]) for s in (printed, reported))
    return rounds_from(printed, float(reported.replace("\u2212", "-")), 0.5 * 10**-given if shown < given else 0.0)


def reported_cells(pattern):
    """Every match of pattern (its groups) in the committed reports (docs/results, pages aside)."""
    cells = set()
    for folder, _, files in os.walk(RESULTS):
        for name in files:
            if name.endswith((".md", ".csv", ".tsv")) and name != "README.md":
                cells.update(m.groups() for m in pattern.finditer(text(os.path.join(folder, name))))
    return cells


def test_prose_numbers_are_reports_numbers():
    """Every 'difference [min, max]' and 'mean ± std' written in the prose of the README and docs is one
    that a committed report prints (docs/cost.md's prose quotes benchmark printouts and is left out);
    a report rerun with the prose left as it was, or a number copied wrong, fails here."""
    errors, checked = [], 0
    for pattern, in_reports in ((PROSE_PAIRED, REPORTED_PAIRED), (SPREAD_CELL, SPREAD_CELL)):
        reported = reported_cells(in_reports)
        for page in prose_pages():
            for number, line in prose_paragraphs(page):
                for match in pattern.finditer(line):
                    checked += 1
                    shown = [(printed, i) for i, printed in enumerate(match.groups()) if printed is not None]
                    if not any(all(cell[i] and near(printed, cell[i]) for printed, i in shown) for cell in reported):
                        errors.append(f"{page}:{number}: {match.group(0)}")
    assert checked >= 20 and not errors, f"prose numbers no report prints: {errors}"


DECIMAL = r"[-+\u2212]?\d+\.\d+"
# three or more, as per-seed values are written; not a grid of settings in braces ('{0.01, 0.1, 1}')
SEED_LIST = re.compile(rf"(?<!{{){DECIMAL}(?:(?:, | / ){DECIMAL}){{2,}}|{DECIMAL}, {DECIMAL},? and {DECIMAL}")
# Lists in prose that are no report's seeds, by design, and what they are instead.
QUOTED_LISTS = {
    "96.4 / 89.1 / 86.6": "the paper's Table 2 (best of 10 seeds)",
    "97.0 / 91.6 / 88.5": "the paper's Table 2 (best of 10 seeds)",
    "97.1 / 90.9 / 88.8": "the paper's Table 2 (best of 10 seeds)",
    "96.4 / 84.4 / 86.6, 96.2 / 91.2 / 88.4, 96.8 / 90.1 / 88.3": "the paper's Table 2 (medians)",
    "8.3, 20.1, 25.7": "one run's metric per epoch, from its log",
    "9.0, 24.7, 26.5": "one run's metric per epoch, from its log",
    "8.6, 28.9, 25.8, 31.1, 29.7, 30.2, 28.6, 29.7, 31.8": "one run's metric per epoch, from its log",
    "52.7, 47.3, 50.5": "one run's metric per epoch, from its log",
    "\u22121.3, +3.1, \u22120.1, +0.8, +2.2": "per-seed differences of two drops (each itself a difference)",
}


def reported_seed_series():
    """Each committed report's per-seed values, ordered by seed: every method's (or σ-sweep variant's)
    runs per column (runs.csv), every method's probes per probe and score (.tsv), and every two
    methods' per-seed differences on the seeds both ran."""
    groups = {}
    for folder, _, files in os.walk(RESULTS):
        for name in files:
            tsv = name.endswith(".tsv")
            if not (tsv or name == "runs.csv"):
                continue
            with open(os.path.join(folder, name), encoding="utf-8") as f:
                for row in csv.DictReader(f, delimiter="\t" if tsv else ","):
                    if row.get("counted") == "False":
                        continue
                    if tsv:
                        place = (row["position"], row["cycle"], row["stage_task"], row["probe_task"])
                        scores = {"accuracy": row["accuracy"], "metric": row.get("metric_value")}
                    else:
                        place, scores = row.get("column", row["metric"]), {"best": row["best"]}
                    method = row.get("method") or row["variant"]
                    for score, value in scores.items():
                        if value:
                            series = groups.setdefault((folder, name, place, score), {}).setdefault(method, {})
                            series[int(row["seed"])] = float(value)
    vectors = []
    for methods in groups.values():
        for method, by_seed in methods.items():
            vectors.append([by_seed[s] for s in sorted(by_seed)])
            for other, other_by_seed in methods.items():
                seeds = sorted(set(by_seed) & set(other_by_seed))
                if other != method:
                    vectors.append([by_seed[s] - other_by_seed[s] for s in seeds])
    return vectors


def test_prose_seed_lists_are_reports_seeds():
    """Every list of three or more per-seed numbers in the prose of the README and docs is a run of
    consecutive seeds of some committed report: one method's values, or two methods' differences
    (QUOTED_LISTS names the lists that are something else). A report rerun with the prose left as it
    was, or a number copied wrong, fails here."""
    vectors = [[repr(round(v, 4)) for v in vector] for vector in reported_seed_series()]
    errors, checked = [], 0
    for page in prose_pages():
        for number, paragraph in prose_paragraphs(page):
            for match in SEED_LIST.finditer(paragraph):
                if match.group(0) in QUOTED_LISTS:
                    continue
                checked += 1
                shown = re.findall(DECIMAL, match.group(0))
                fine = any(
                    all(map(near, shown, vector[start : start + len(shown)]))
                    for vector in vectors
                    for start in range(len(vector) - len(shown) + 1)
                )
                if not fine:
                    errors.append(f"{page}:{number}: {match.group(0)}")
    assert checked >= 10 and not errors, f"per-seed lists no report gives: {errors}"
    unused = set(QUOTED_LISTS) - {
        m.group(0) for p in prose_pages() for _, t in prose_paragraphs(p) for m in SEED_LIST.finditer(t)
    }
    assert not unused, f"QUOTED_LISTS entries no page holds any more: {sorted(unused)}"
