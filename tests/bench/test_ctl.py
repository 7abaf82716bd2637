#!/usr/bin/env python3
"""The bench's mode syntax (bench/vfsbench/ctl.py): which modes parse, and
the control lines a mode turns into (pool:N:batch|normal also sets the pool
threads' policy, auto:N:slowUS auto's threshold)."""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))

from vfsbench import ctl  # noqa: E402


class ModeSyntax(unittest.TestCase):
    def test_good(self):
        for m in ("inline", "pool:1", "pool:16", "pool:1024", "pool:16:batch",
                  "pool:4:normal", "auto", "auto:3", "auto:16:slow40",
                  "auto:1:slow1000000"):
            self.assertEqual(ctl.parse_mode(m), m)

    def test_bad(self):
        for m in ("", "pool", "pool:0", "pool:1025", "pool:16:fifo",
                  "pool:16:", "inline:batch", "pool:x", "pool:16:batch:1",
                  "auto:0", "auto:1025", "auto:16:slow0", "auto:16:slow1000001",
                  "auto:16:40", "auto::slow40", "auto:16:slow40:batch", "auto:x",
                  "pool:16:slow40"):
            with self.assertRaises(ValueError, msg=m):
                ctl.parse_mode(m)

    def test_lines(self):
        self.assertEqual(ctl.mode_line("inline"), "mode set inline all")
        self.assertEqual(ctl.mode_line("pool:16"), "mode set pool 16 all")
        self.assertEqual(ctl.mode_line("pool:8:batch"), "mode set pool 8 all")
        self.assertEqual(ctl.pool_size_of("pool:8:batch"), 8)
        self.assertEqual(ctl.pool_sched_of("pool:8:batch"), "batch")
        self.assertEqual(ctl.pool_sched_of("pool:8:normal"), "normal")
        self.assertIsNone(ctl.pool_sched_of("pool:8"))
        self.assertIsNone(ctl.pool_sched_of("inline"))
        self.assertEqual(ctl.mode_line("auto"), "mode set auto all")
        self.assertEqual(ctl.mode_line("auto:16"), "mode set auto 16 all")
        self.assertEqual(ctl.mode_line("auto:16:slow40"), "mode set auto 16 all")
        self.assertEqual(ctl.auto_slow_of("auto:16:slow40"), 40)
        self.assertIsNone(ctl.auto_slow_of("auto:16"))
        self.assertIsNone(ctl.auto_slow_of("auto"))
        self.assertIsNone(ctl.auto_slow_of("pool:16:batch"))


if __name__ == "__main__":
    unittest.main()
