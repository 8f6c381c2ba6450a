"""Progress lines (swiotlb_lib.cli.progress) and the commands that show them: a total, an
estimate of the time left, on stderr, only on a terminal or with --progress."""
import io
import json

from swiotlb_lib.cli import main
from swiotlb_lib.cli.progress import Progress, format_eta, progress_for
from swiotlb_lib.cli.traces import advise_replays
from tracedata import T1


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_line_has_total_and_estimate():
    clock = Clock()
    s = io.StringIO()
    p = Progress(s, "work", clock=clock)
    clock.t = 2.0
    p(1, 4)                 # 2 s for 1 of 4: 3 left at 2 s each = 6 s left
    assert s.getvalue().startswith("\rwork [")
    assert "25% 1/4" in s.getvalue() and "2.0 s, about 6 s left" in s.getvalue()


def test_redraws_at_most_ten_times_a_second_but_always_the_end():
    clock = Clock()
    s = io.StringIO()
    p = Progress(s, "w", clock=clock)
    p(1, 10)
    clock.t = 0.05
    p(2, 10)                # too soon: not drawn
    p(10, 10)               # the end is always drawn
    assert s.getvalue().count("\r") == 2 and "100% 10/10" in s.getvalue()
    p.finish()
    assert s.getvalue().endswith("\n")


def test_estimated_total_is_marked_and_raised():
    s = io.StringIO()
    p = Progress(s, "replays", clock=Clock()).approx_total(8)
    assert "3/~8" in p.text(3, None, 1.0)
    assert "9/~9" in p.text(9, None, 1.0)


def test_format_eta():
    assert (format_eta(4.4), format_eta(65), format_eta(-1)) == ("4 s", "1 min 05 s", "0 s")


class Args:
    progress = False


def test_only_on_a_terminal_or_when_asked():
    class Tty(io.StringIO):
        def isatty(self):
            return True
    assert progress_for(Args(), "x", io.StringIO()) is None
    assert progress_for(Args(), "x", Tty()) is not None
    a = Args()
    a.progress = True
    assert progress_for(a, "x", io.StringIO()) is not None


def test_advise_replays_estimate_counts_each_profile():
    one = advise_replays(["v6.11"], 2)
    assert one >= 3 and advise_replays(["v6.11", "v6.6"], 2) > one


def test_replay_progress_on_stderr_only(capsys):
    assert main(["replay", str(T1), "--json"]) == 0
    cap = capsys.readouterr()
    assert cap.err == "" and json.loads(cap.out)
    assert main(["replay", str(T1), "--json", "--progress"]) == 0
    cap = capsys.readouterr()
    assert "replaying [" in cap.err and "100%" in cap.err and json.loads(cap.out)


def test_advise_progress_has_a_total(capsys):
    assert main(["advise", str(T1), "--kernel", "v6.11", "--json", "--progress"]) == 0
    err = capsys.readouterr().err
    # the bound is max_replays() (1 profile, 2 CPUs); the line ends at the replays run, 100 %
    assert "replays (at most " in err
    last = err.rstrip("\n").split("\r")[-1]
    assert "100%" in last and last.startswith("replays (at most ")


def test_compare_progress_counts_the_workload_of_every_profile(capsys):
    # the nvme scenario issues 2000 operations (scenarios/systems.py: nvme(ops=2000)); two
    # profiles: 4000 in all, from the first line (0/4,000) to the last
    assert main(["compare", "nvme", "--kernel", "v6.11", "--kernel", "v6.6", "--progress", "--json"]) == 0
    cap = capsys.readouterr()
    assert "0% 0/4,000" in cap.err and "100% 4,000/4,000" in cap.err
    assert len(json.loads(cap.out)) == 2


def test_scenario_and_benchmark_progress(capsys):
    # storage issues 1500 requests (storage(requests=1500)): the total, and an estimate of
    # the time left while it runs
    assert main(["scenario", "storage", "--progress", "--json"]) == 0
    cap = capsys.readouterr()
    assert "scenario storage [" in cap.err and "100% 1,500/1,500" in cap.err and json.loads(cap.out)
    lines = cap.err.replace("\r", "\n").splitlines()
    assert any("/1,500" in x and "left" in x for x in lines)
    assert main(["scenario", "storage", "--json"]) == 0
    assert capsys.readouterr().err == ""                    # not a terminal, not asked: nothing
    assert main(["dma-map-benchmark", "--loops", "1000", "--progress"]) == 0
    cap = capsys.readouterr()
    assert "1,000/1,000" in cap.err and cap.out.startswith("dma mapping benchmark:")
