#!/usr/bin/env python3
"""The bench report (bench/vfsbench/report.py, plots.py) on the synthetic
results folders in fixtures/ (made by fixtures/make_fixture.py): the seed
table's rows, Δ % and marks, the fio-vs-daemon numbers derived from the
counters snapshots, the written files and plots, the compare command and the
CLI. Expected values are worked out by hand from the fixture's inputs."""

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.normpath(os.path.join(HERE, "..", "..", "bench"))
FIXTURES = os.path.join(HERE, "fixtures")
sys.path.insert(0, BENCH)

from vfsbench import plots, report  # noqa: E402

J1, J2, J3 = "randread-psync-single", "randwrite-libaio-multi", "randrw-mmap-single"


def table_rows(md):
    """{first cell: [cells]} of the Markdown table rows in md."""
    rows = {}
    for line in md.splitlines():
        if not line.startswith("| ") or line.startswith("|---"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows.setdefault(cells[0], []).append(cells)
    return rows


def have_matplotlib():
    plt, _ = plots.load_pyplot()
    return plt is not None


class Rendered(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="vfsbench-report-test.")
        for name in ("live-tmpfs", "binary-disk"):
            shutil.copytree(os.path.join(FIXTURES, name), os.path.join(cls.tmp, name))
        cls.live = os.path.join(cls.tmp, "live-tmpfs")
        cls.binary = os.path.join(cls.tmp, "binary-disk")
        cls.table = report.render(cls.live)
        with open(os.path.join(cls.live, "summary.json")) as f:
            cls.summary = json.load(f)
        with open(os.path.join(cls.live, "report.md")) as f:
            cls.md = f.read()
        cls.jobs = {j["name"]: j for j in cls.summary["jobs"]}

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    # ---- the seed-style table ----------------------------------------------

    def test_table_header_uses_labels(self):
        head = [c.strip() for c in self.table.splitlines()[0].strip("|").split("|")]
        self.assertEqual(head, ["workload", "inline MiB/s", "pool:4 MiB/s", "inline IOPS",
                                "pool:4 IOPS", "Δ %", "95 % CI", "sig", "n", "notes"])

    def test_table_rows(self):
        rows = table_rows(self.table)
        self.assertEqual(list(rows), ["workload", J1, J2, J3])
        # IOPS are fio's (1300 = mean of 1300/1400/1200), MiB/s = IOPS x 4 KiB
        self.assertEqual(rows[J1][0][1:], ["5.08", "3.91", "1300", "1000", "-23.1",
                                           "[-40.5, -5.6]", "", "3/3", ""])
        self.assertEqual(rows[J2][0][1:], ["7.81", "8.20", "2000", "2100", "+5.0",
                                           "[-17.7, +27.7]", "~", "3/3", ""])
        # randrw: read 3750 + write 1250 IOPS; B has one good run of three
        self.assertEqual(rows[J3][0][1:], ["19.5", "23.4", "5000", "6000", "+20.0",
                                           "n/a", "?", "3/1", "2 failed on B"])

    def test_table_legend_notes_reps_and_method(self):
        self.assertIn("3 reps per side", self.table)
        self.assertNotIn("1 reps", self.table)
        self.assertIn("Welch", self.table)
        self.assertIn("Failed runs: 2", self.table)

    def test_delta_numbers(self):
        d = self.jobs[J1]["delta"]
        self.assertAlmostEqual(d["delta_pct"], -300 / 13, places=6)
        self.assertAlmostEqual(d["ci_lo"], -300 / 13 - 2.7764451 * 81.649658 / 13, places=3)
        self.assertAlmostEqual(d["df"], 4.0, places=9)
        self.assertEqual(d["significant"], True)
        self.assertEqual(self.jobs[J2]["delta"]["significant"], False)

    def test_failed_runs_listed_and_excluded(self):
        failed = self.summary["failed_runs"]
        self.assertEqual(len(failed), 2)
        self.assertEqual({f["job"] for f in failed}, {J3})
        self.assertIn("timeout", failed[0]["error"])
        self.assertEqual(failed[1]["error"], "fio error 5")
        self.assertEqual(self.jobs[J3]["sides"]["B"]["iops"], [6000.0])
        self.assertIn("### Failed runs", self.md)
        self.assertIn("randrw-mmap-single B rep 1 (seq 14): fio error 5", self.md)

    # ---- fio figures --------------------------------------------------------

    def test_fio_clat_weighted_by_ios(self):
        a = self.jobs[J2]["sides"]["A"]
        # 40 % of the I/Os at 20 ms, 60 % at 40 ms: 32 ms (unweighted: 35 ms)
        self.assertAlmostEqual(a["clat_mean_us"], 32000.0, places=6)
        self.assertAlmostEqual(a["clat_p99_us"], 72000.0, places=6)
        # read 75 % at 100 µs, write 25 % at 300 µs
        self.assertAlmostEqual(self.jobs[J3]["sides"]["A"]["clat_mean_us"], 150.0, places=6)
        self.assertAlmostEqual(self.jobs[J1]["sides"]["B"]["clat_mean_us"], 1000.0, places=6)

    # ---- the daemon's counters ------------------------------------------

    def test_daemon_rates_and_counts(self):
        a = self.jobs[J1]["sides"]["A"]["daemon"]
        b = self.jobs[J1]["sides"]["B"]["daemon"]
        # 3900+4200+3600 READs over 3 x 3.5 s windows
        self.assertAlmostEqual(a["read_rps"], 11700 / 10.5, places=6)
        self.assertAlmostEqual(b["read_rps"], 9000 / 10.5, places=6)
        self.assertEqual(a["write_rps"], 0.0)
        self.assertEqual(a["rw_per_fio_io"], 1.0)
        self.assertEqual(a["other_count"], 12)            # LOOKUP/OPEN/FLUSH/RELEASE x 3
        self.assertNotIn("FORGET", a["ops"])              # hiprio queue stays out
        self.assertAlmostEqual(self.jobs[J2]["sides"]["B"]["daemon"]["write_rps"], 18900 / 10.5, places=6)

    def test_daemon_phase_means(self):
        a = self.jobs[J1]["sides"]["A"]["daemon"]["phases"]
        b = self.jobs[J1]["sides"]["B"]["daemon"]["phases"]
        # 98 % at 2 µs + 2 % at 6 µs; B: 14 µs / 40 µs
        self.assertAlmostEqual(a["wait"]["mean_us"], 2.08, places=9)
        self.assertAlmostEqual(b["wait"]["mean_us"], 14.52, places=9)
        self.assertAlmostEqual(a["service"]["mean_us"], 53.0, places=9)
        self.assertAlmostEqual(b["service"]["mean_us"], 53.0, places=9)
        self.assertAlmostEqual(a["total"]["mean_us"], 56.08, places=9)
        self.assertAlmostEqual(b["total"]["mean_us"], 68.52, places=9)

    def test_daemon_p99_from_bucket_differences(self):
        a = self.jobs[J1]["sides"]["A"]["daemon"]["phases"]
        b = self.jobs[J1]["sides"]["B"]["daemon"]["phases"]
        # upper ends of the buckets holding 6000 [5632, 6144), 40000
        # [36864, 40960), 200000 and 207000 [196608, 212992), 241000
        # [237568, 245760). The 2 ms / 48 ms READ before the bench must not
        # show: the snapshots' own p99 would.
        self.assertAlmostEqual(a["wait"]["p99_us"], 6.143)
        self.assertAlmostEqual(b["wait"]["p99_us"], 40.959)
        self.assertAlmostEqual(a["service"]["p99_us"], 212.991)
        self.assertAlmostEqual(a["total"]["p99_us"], 212.991)
        self.assertAlmostEqual(b["total"]["p99_us"], 245.759)
        self.assertAlmostEqual(a["wait"]["p50_us"], 2.047)

    def test_remainder_kicks_notifications(self):
        j1a = self.jobs[J1]["sides"]["A"]["daemon"]
        j1b = self.jobs[J1]["sides"]["B"]["daemon"]
        self.assertAlmostEqual(j1a["remainder_us"], 800 - 56.08, places=6)
        self.assertAlmostEqual(j1b["remainder_us"], 1000 - 68.52, places=6)
        self.assertEqual(j1a["reqs_per_kick"], 1.0)
        j2a = self.jobs[J2]["sides"]["A"]["daemon"]
        j2b = self.jobs[J2]["sides"]["B"]["daemon"]
        self.assertEqual(j2a["reqs_per_kick"], 1.0)
        self.assertEqual(j2b["reqs_per_kick"], 4.0)
        self.assertEqual((j2b["notify_sent"], j2b["notify_suppressed"]), (9468, 9468))
        self.assertEqual((j2a["notify_sent"], j2a["notify_suppressed"]), (18036, 0))
        self.assertEqual((j2b["pool_busy"], j2b["pool_threads"]), (1.0, 4.0))
        self.assertEqual(j2b["modes"], ["pool"])

    def test_no_counters_is_na(self):
        self.assertIsNone(self.jobs[J3]["sides"]["A"]["daemon"])
        rows = table_rows(self.md)
        j3 = [r for r in rows[J3] if r[1].startswith("A (")]
        self.assertEqual(len(j3), 2)  # throughput and latency tables
        self.assertEqual(j3[0][3:], ["n/a"] * 9)
        self.assertEqual(j3[1][2], "150")
        self.assertEqual(j3[1][3:8], ["n/a"] * 5)

    def test_correlation_tables_in_markdown(self):
        rows = table_rows(self.md)
        thr = [r for r in rows[J1] if r[1] == "A (inline)"][0]
        self.assertEqual(thr[2:6], ["1300", "1114", "0.00", "12"])
        lat = [r for r in rows[J2] if r[1] == "B (pool:4)"][1]
        # fio clat, wait, service, complete, total, remainder
        self.assertEqual(lat[2:8], ["30400", "14.5", "94.2", "1.00", "110", "30290"])

    def test_why_lines(self):
        why1 = self.jobs[J1]["why"]
        self.assertIn("pool:4 -23.1 % IOPS vs inline (significant)", why1)
        self.assertIn("wait +12.44 µs/request (pool handoff on B)", why1)
        self.assertIn("service unchanged (+0.00 µs)", why1)
        self.assertIn("outside the daemon (guest + transport) +187.56 µs", why1)
        why2 = self.jobs[J2]["why"]
        self.assertIn("(not significant)", why2)
        self.assertIn("service -9.80 µs/request", why2)
        self.assertIn("requests per kick 1.00 → 4.00", why2)
        self.assertIn("notifications suppressed 0 % → 50 %", why2)
        self.assertIn("no daemon counters on A and B", self.jobs[J3]["why"])
        self.assertIn("- **%s**: %s" % (J1, why1), self.md)

    # ---- files ------------------------------------------------------------

    def test_configuration_recorded(self):
        for text in ("--thread-pool-size=4", "QEMU emulator version 7.2.15",
                     "profile: quick", "share: tmpfs `/tmp/vfs-bench-share`",
                     "fio: fio-3.33, size 64M, runtime 3 s", "kernel 6.1.0-28-amd64",
                     "reps 3", "bench/vfs-bench run --profile quick"):
            self.assertIn(text, self.md)
        self.assertEqual(self.summary["config"]["guest"]["queue_size"], 128)
        self.assertEqual(self.summary["config"]["share"]["kind"], "tmpfs")

    def test_csv(self):
        with open(os.path.join(self.live, "results.csv"), newline="") as f:
            rows = list(csv.DictReader(f))
        self.assertEqual([(r["row"], r["job"], r["side"]) for r in rows],
                         [("side", J1, "A"), ("side", J1, "B"), ("delta", J1, ""),
                          ("side", J2, "A"), ("side", J2, "B"), ("delta", J2, ""),
                          ("side", J3, "A"), ("side", J3, "B"), ("delta", J3, "")])
        self.assertAlmostEqual(float(rows[2]["delta_pct"]), -300 / 13, places=6)
        self.assertEqual(rows[5]["mark"], "~")
        self.assertEqual(rows[8]["mark"], "?")
        self.assertEqual(rows[8]["ci_lo"], "")
        self.assertAlmostEqual(float(rows[1]["wait_mean_us"]), 14.52, places=6)
        self.assertEqual(rows[7]["n_failed"], "2")
        self.assertEqual(rows[6]["wait_mean_us"], "")

    def test_plots(self):
        files = sorted(self.summary["plots"])
        if have_matplotlib():
            self.assertEqual(files, ["delta.png", "delta.svg", "latency-%s.png" % J1,
                                     "latency-%s.svg" % J1])
            for f in files:
                with open(os.path.join(self.live, f), "rb") as fh:
                    head = fh.read(512)
                if f.endswith(".png"):
                    self.assertEqual(head[:8], b"\x89PNG\r\n\x1a\n")
                else:
                    self.assertIn(b"<svg", head)
            self.assertIn("![delta](delta.png)", self.md)
        else:
            self.assertEqual(files, [])
            self.assertIn("plots skipped", self.summary["plots_note"])

    def test_latency_job_option(self):
        out = os.path.join(self.tmp, "other")
        shutil.copytree(self.live, out)
        report.render(out, latency_job=J2)
        with open(os.path.join(out, "summary.json")) as f:
            s = json.load(f)
        if have_matplotlib():
            self.assertIn("latency-%s.png" % J2, s["plots"])
            self.assertNotIn("latency-%s.png" % J1, s["plots"])

    def test_without_matplotlib_the_report_is_still_written(self):
        out = os.path.join(self.tmp, "nompl")
        os.mkdir(out)
        shutil.copy(os.path.join(self.live, "raw.json"), out)
        code = ("import sys; sys.modules['matplotlib'] = None; "
                "from vfsbench import report; print(report.render(sys.argv[1]))")
        p = subprocess.run([sys.executable, "-c", code, out], capture_output=True, text=True,
                           env=dict(os.environ, PYTHONPATH=BENCH), timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("plots skipped", p.stdout)
        self.assertIn("| %s |" % J1, p.stdout)
        self.assertFalse([f for f in os.listdir(out) if f.endswith((".png", ".svg"))])
        for f in ("report.md", "results.csv", "summary.json"):
            self.assertTrue(os.path.exists(os.path.join(out, f)), f)
        with open(os.path.join(out, "report.md")) as fh:
            self.assertIn("plots skipped", fh.read())

    # ---- a binary A/B without counters on B, and compare -----------------

    def test_binary_ab_without_counters_on_b(self):
        table = report.render(self.binary)
        rows = table_rows(table)
        self.assertEqual(rows[J1][0][1:8], ["10.2", "10.2", "2600", "2600", "+0.0",
                                            "[-17.4, +17.4]", "~"])
        self.assertEqual(rows["randread-libaio-single"][0][5:8], ["-16.7", "[-24.2, -9.1]", ""])
        with open(os.path.join(self.binary, "summary.json")) as f:
            s = json.load(f)
        j1 = s["jobs"][0]
        self.assertIsNone(j1["sides"]["B"]["daemon"])
        self.assertAlmostEqual(j1["sides"]["A"]["daemon"]["read_rps"], 23400 / 10.5, places=6)
        self.assertIn("no daemon counters on B", j1["why"])

    def test_compare(self):
        text = report.compare(self.live, self.binary)
        rows = table_rows(text)
        self.assertEqual(rows[J1][0][1:], ["1300", "1000", "-23.1", "[-40.5, -5.6]",
                                           "2600", "2600", "+0.0 ~", "[-17.4, +17.4]",
                                           "+100.0", "+160.0", "+23.1"])
        self.assertNotIn(J2, rows)
        self.assertIn("Only in 1: %s, %s" % (J2, J3), text)
        self.assertIn("Only in 2: randread-libaio-single", text)
        self.assertIn('share.kind: "tmpfs" → "disk"', text)
        self.assertNotIn("started:", text)
        # the same folder twice: nothing differs
        same = table_rows(report.compare(self.live, self.live))
        self.assertEqual(same[J1][0][9:], ["+0.0 ~", "+0.0 ~", "+0.0"])

    # ---- the command line ---------------------------------------------------

    def run_cli(self, *args):
        return subprocess.run([sys.executable, "-m", "vfsbench.report"] + list(args),
                              capture_output=True, text=True, timeout=120,
                              env=dict(os.environ, PYTHONPATH=BENCH))

    def test_cli(self):
        p = self.run_cli("render", self.binary)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("| randread-libaio-single |", p.stdout)
        p = self.run_cli("compare", self.live, self.binary)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("| %s | 1300 |" % J1, p.stdout)
        p = self.run_cli("render", os.path.join(self.tmp, "does-not-exist"))
        self.assertEqual(p.returncode, 1)
        self.assertIn("raw.json", p.stderr)
        buf = io.StringIO()
        old, sys.stdout = sys.stdout, buf
        try:
            rc = report.main(["compare", self.live, self.binary])
        finally:
            sys.stdout = old
        self.assertEqual(rc, 0)
        self.assertIn("Only in 2", buf.getvalue())


if __name__ == "__main__":
    unittest.main(verbosity=2)
