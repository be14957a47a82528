"""The model-throughput bench runs itself on CPU with the tiny model and prints its figures (on a GPU it builds the 3B
and 7B shapes; that run is not part of the tests)."""

from __future__ import annotations

import pytest

from bench.model_throughput import main


@pytest.mark.slow
def test_the_bench_prints_both_paths_and_their_ratio_on_cpu(tmp_path, capsys):
    figures = main(["--shape", "tiny", "--rows", "6", "--runs", "1", "--samples", "1", "--max-new-tokens", "2",
                    "--decode-workers", "1", "--batch-size", "3", "--work", str(tmp_path)])
    a, b = figures["tiny"]["a"], figures["tiny"]["b"]
    assert a.samples == b.samples == 6 and a.seconds > 0 and b.seconds > 0
    assert b.generated_tokens == 6 * 2 * 2  # greedy + 1 sample, 2 tokens each: the output length is fixed
    assert a.generated_tokens == b.generated_tokens and a.prompt_tokens == b.prompt_tokens > 0
    out = capsys.readouterr().out
    for label in ("(a) check end to end", "(b) engine alone", "a/b = "):
        assert label in out
    assert "samples/s" in out and "prompt tok/s" in out and "generated tok/s" in out and "engine busy" in out
