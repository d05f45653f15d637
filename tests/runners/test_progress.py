import time

from fedbrats.runners.progress import LogFollower, time_left

LINE = "2026-01-01 00:00:00,000 - ScoredScatterAndGather - INFO - [identity=simulator_server] - Round {} started.\n"


def wait_for(capsys, text, seconds=5.0):
    seen = ""
    deadline = time.time() + seconds
    while time.time() < deadline:
        seen += capsys.readouterr().out
        if text in seen:
            return seen
        time.sleep(0.1)
    return seen


def test_progress_lines_of_logs_that_appear_later_or_start_again_are_shown(tmp_path, capsys):
    server = tmp_path / "server"
    server.mkdir()
    log = server / "log.txt"
    log.write_text(LINE.format(0) + "2026-01-01 00:00:00,000 - Cell - INFO - heartbeat\n" * 20)
    with LogFollower(str(tmp_path / "*" / "log.txt"), "sim"):
        assert "server: Round 0 started." in wait_for(capsys, "Round 0")
        log.write_text(LINE.format(1))  # the log starts again, shorter than what was read
        assert "server: Round 1 started." in wait_for(capsys, "Round 1")
        site = tmp_path / "site-1"
        site.mkdir()
        (site / "log.txt").write_text(LINE.format(2).replace("simulator_server", "site-1"))
        out = wait_for(capsys, "Round 2")
    assert "site-1: Round 2 started." in out and "heartbeat" not in out


def test_a_sites_round_line_says_how_long_the_remaining_rounds_take():
    assert time_left("round 5/20: global model val Dice 0.5", elapsed=300.0) == " (about 15.0 min of rounds left)"
    assert time_left("round 20/20: global model val Dice 0.5", elapsed=300.0) == ""
    assert time_left("Round 3 started.", elapsed=300.0) == ""
