import io

from related.progress import Progress


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_log_lines_every_interval_when_not_a_terminal():
    stream, clock = io.StringIO(), Clock()
    bar = Progress("tokenize", 100, stream=stream, interval=5.0, clock=clock)
    for _ in range(100):
        clock.now += 0.2  # 20 s in all: a line each 5 s since the previous one
        bar.advance()
    bar.close()
    lines = stream.getvalue().splitlines()
    assert lines[0] == "related: tokenize 25/100 (25%, 5.0s)"
    assert lines[-1] == "related: tokenize 100/100 (100%, 20.0s)"
    assert len(lines) == 4  # at 5.0, 10.2 and 15.4 s, and the final one
    assert lines[1] == "related: tokenize 51/100 (51%, 10.2s)"


def test_short_stage_prints_nothing_when_not_a_terminal():
    stream = io.StringIO()
    bar = Progress("vectorize", 3, stream=stream, clock=Clock())
    bar.advance(3)
    bar.close()
    assert stream.getvalue() == ""


def test_bar_on_a_terminal_redraws_one_line():
    stream, clock = Terminal(), Clock()
    bar = Progress("neighbours", 4, stream=stream, clock=clock)
    for _ in range(4):
        clock.now += 1
        bar.advance()
    bar.close()
    text = stream.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")
    assert text.count("\r") == 5
    assert "[##############################] 100% 4/4" in text
